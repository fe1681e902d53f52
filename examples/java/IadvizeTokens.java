// Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager, with
// the behaviour of the other readers (examples/go, node, python, shell): AWSCURRENT cached until
// expires_at minus 5 minutes; a failed read keeps the cached token until it expires and is
// retried after a backoff; after a 401, one re-read, and when the token read again is the
// refused one, a report to the broker's queue and a bounded wait for the new version. Never
// logs in to iAdvize, never logs the token.
//
// Not compiled by this project (no Maven Central here): a documented snippet. Needs Java 17+,
// software.amazon.awssdk:secretsmanager and :sqs (AWS SDK for Java v2), and
// com.fasterxml.jackson.core:jackson-databind.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueResponse;
import software.amazon.awssdk.services.sqs.SqsClient;
import software.amazon.awssdk.services.sqs.model.SendMessageRequest;

public final class IadvizeTokens {
    private static final Duration MARGIN = Duration.ofMinutes(5);
    private static final Duration RECHECK = Duration.ofSeconds(30);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(30);
    // After a report: re-read after 1 s, doubling, at most 5 s, for at most 30 s in all
    // (IADVIZE_REPORT_WAIT_SECONDS, as in the other readers): the broker publishes a new token
    // seconds after the report.
    private static final Duration NEW_TOKEN_WAIT = reportWait(System.getenv("IADVIZE_REPORT_WAIT_SECONDS"));
    private static final long REPORT_BACKOFF_MS = 1000, MAX_REPORT_BACKOFF_MS = 5000;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final SecretsManagerClient secrets;
    private final SqsClient reports; // null: no report queue
    private final String queueUrl;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();

    /** One cache entry per token secret id, exactly as given. Guarded by its own monitor. */
    private static final class Entry {
        String token;
        String arn; // the secret's full ARN, as GetSecretValue answered it: what reports name
        Instant expiresAt, readAgainAt;
        RuntimeException failure;
        int failuresInARow;
        Instant retryAt = Instant.MIN;

        boolean usable(Instant now) {
            return token != null && now.isBefore(expiresAt);
        }
    }

    /** Clients from the SDK's default chain; IADVIZE_REPORT_QUEUE_URL enables reports. */
    public static IadvizeTokens fromEnv() {
        String queueUrl = System.getenv("IADVIZE_REPORT_QUEUE_URL");
        boolean report = queueUrl != null && !queueUrl.isEmpty();
        return new IadvizeTokens(SecretsManagerClient.create(), report ? SqsClient.create() : null, queueUrl);
    }

    public IadvizeTokens(SecretsManagerClient secrets, SqsClient reports, String queueUrl) {
        this.secrets = secrets;
        this.reports = reports;
        this.queueUrl = queueUrl;
    }

    /** The current token of secretId; rejected: a token iAdvize just refused (read again at once). */
    public String token(String secretId, String rejected) {
        Entry e = entries.computeIfAbsent(secretId, id -> new Entry());
        synchronized (e) { // concurrent callers of one secret share one read
            Instant now = Instant.now();
            if (rejected != null && rejected.equals(e.token)) {
                e.token = null;
                e.failure = null;
                e.retryAt = Instant.MIN;
            }
            if (e.token != null && now.isBefore(e.readAgainAt)) return e.token;
            if (e.failure != null && now.isBefore(e.retryAt)) {
                if (e.usable(now)) return e.token;
                throw e.failure;
            }
            try {
                read(secretId, e);
                e.failure = null;
                e.failuresInARow = 0;
                return e.token;
            } catch (RuntimeException error) {
                // Secrets Manager throttled or unreachable: back off (1 s doubling, at most 30 s,
                // never past expiry) and keep a token that has not expired.
                e.failuresInARow++;
                long wait = Math.min(1000L << Math.min(e.failuresInARow - 1, 15), MAX_BACKOFF.toMillis());
                Instant retry = now.plusMillis(wait);
                e.retryAt = e.usable(now) && retry.isAfter(e.expiresAt) ? e.expiresAt : retry;
                e.failure = error;
                if (e.usable(now)) {
                    System.err.println("reading " + secretId + " failed (" + error.getClass().getSimpleName()
                            + "); using the cached token until it expires");
                    return e.token;
                }
                throw error;
            }
        }
    }

    private void read(String secretId, Entry e) {
        GetSecretValueResponse value = secrets.getSecretValue(
                GetSecretValueRequest.builder().secretId(secretId).versionStage("AWSCURRENT").build());
        if (value.secretString() == null) {
            throw new IllegalStateException("secret " + secretId + " holds no token record (binary or empty); is the broker running?");
        }
        JsonNode record;
        try {
            record = JSON.readTree(value.secretString());
        } catch (Exception notJson) { // never echo the value
            throw new IllegalStateException("secret " + secretId + " holds no token record (the value is not JSON); is the broker running?");
        }
        String token = record.path("access_token").asText("").trim();
        Instant expiresAt;
        try {
            expiresAt = Instant.parse(record.path("expires_at").asText("").trim());
        } catch (Exception notATime) {
            expiresAt = null;
        }
        if (token.isEmpty() || expiresAt == null) {
            throw new IllegalStateException("secret " + secretId + " holds no token record yet; is the broker running?");
        }
        Instant now = Instant.now();
        if (!now.isBefore(expiresAt)) {
            throw new IllegalStateException("the token in " + secretId + " expired at " + expiresAt + "; is the broker running?");
        }
        Instant due = expiresAt.minus(MARGIN);
        e.token = token;
        e.arn = value.arn() != null ? value.arn() : secretId;
        e.expiresAt = expiresAt;
        e.readAgainAt = due.isAfter(now) ? due : min(now.plus(RECHECK), expiresAt);
    }

    /** After a 401: one re-read; the same token is reported and a new one awaited (bounded). */
    public String rejected(String secretId, String token) throws InterruptedException {
        String again = token(secretId, token);
        if (!again.equals(token)) return again;
        if (reports == null) {
            throw new IllegalStateException("iAdvize refused the token of " + secretId
                    + " (HTTP 401), and the secret holds no other; set IADVIZE_REPORT_QUEUE_URL so that the broker replaces it");
        }
        // Reports name the secret by its ARN, however this process names it: one secret's
        // reports share one message group, which the broker handles one batch at a time.
        Entry e = entries.get(secretId);
        String arn = secretId;
        if (e != null) {
            synchronized (e) {
                if (e.arn != null) arn = e.arn;
            }
        }
        String body = JSON.createObjectNode()
                .put("action", "report-rejected")
                .put("secret_id", arn)
                .put("token_sha256", sha256(token)) // the hash, never the token
                .toString();
        String group = arn.length() <= 128 ? arn : sha256(arn); // SQS allows 128 characters
        reports.sendMessage(SendMessageRequest.builder()
                .queueUrl(queueUrl).messageBody(body).messageGroupId(group).build());
        Instant deadline = Instant.now().plus(NEW_TOKEN_WAIT);
        for (long wait = REPORT_BACKOFF_MS; Instant.now().isBefore(deadline); wait = Math.min(wait * 2, MAX_REPORT_BACKOFF_MS)) {
            Thread.sleep(Math.min(wait, Math.max(1, Duration.between(Instant.now(), deadline).toMillis())));
            try {
                again = token(secretId, token);
                if (!again.equals(token)) return again;
            } catch (RuntimeException stillFailing) {
                // keep waiting until the deadline
            }
        }
        throw new IllegalStateException("iAdvize refused the token of " + secretId
                + " (HTTP 401); reported it, and no new token came within " + NEW_TOKEN_WAIT);
    }

    /** The wait after a report: seconds (fractions allowed, not negative), 30 s when unset or invalid. */
    static Duration reportWait(String seconds) {
        if (seconds != null) {
            try {
                double s = Double.parseDouble(seconds);
                if (s >= 0 && s < 86400) return Duration.ofMillis(Math.round(s * 1000));
            } catch (NumberFormatException invalid) {
                // the default below
            }
        }
        return Duration.ofSeconds(30);
    }

    /** POST {api}/graphql with the token of secretId; the 401 path above, then one retry. */
    public String graphql(String api, String secretId, String query) throws Exception {
        String token = token(secretId, null);
        HttpResponse<String> answer = post(api, token, query);
        if (answer.statusCode() == 401) answer = post(api, rejected(secretId, token), query);
        if (answer.statusCode() != 200) throw new IllegalStateException("iAdvize GraphQL answered HTTP " + answer.statusCode());
        return answer.body();
    }

    private HttpResponse<String> post(String api, String token, String query) throws Exception {
        String body = JSON.createObjectNode().put("query", query).toString();
        HttpRequest request = HttpRequest.newBuilder(URI.create(api + "/graphql"))
                .timeout(Duration.ofSeconds(10))
                .header("Authorization", "Bearer " + token)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        return http.send(request, HttpResponse.BodyHandlers.ofString());
    }

    private static String sha256(String token) {
        try {
            return HexFormat.of().formatHex(
                    MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException impossible) { // every JVM has SHA-256
            throw new IllegalStateException(impossible);
        }
    }

    private static Instant min(Instant a, Instant b) {
        return a.isBefore(b) ? a : b;
    }

    public static void main(String[] args) throws Exception {
        IadvizeTokens tokens = IadvizeTokens.fromEnv();
        String api = System.getenv().getOrDefault("IADVIZE_API_URL", "https://api.iadvize.com");
        System.out.println(tokens.graphql(api, System.getenv("IADVIZE_TOKEN_SECRET_ID"), "{ me { username } }"));
    }
}
