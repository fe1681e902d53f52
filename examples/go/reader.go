// Reads the iAdvize access token that iadvize-token-broker keeps in AWS Secrets Manager, and
// calls the iAdvize GraphQL API with it. Never logs in to iAdvize.
//
// Rules: read AWSCURRENT; cache the token until expires_at minus a margin (one read per
// process per token lifetime); when a read fails (throttling, network), keep using the cached
// token until it actually expires and read again after a backoff, not on every call; after a
// 401, read the secret again once. When the token read again is the one iAdvize refused, the
// broker does not know yet: report it to the broker's SQS queue (IADVIZE_REPORT_QUEUE_URL),
// wait a bounded time for the new version, and give up if none comes.
//
// Copy this file into your own package; main.go shows how to use it.

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SecretsManager is the one Secrets Manager call the reader makes (*secretsmanager.Client).
type SecretsManager interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Queue is the one SQS call the reader makes (*sqs.Client), to report a refused token.
type Queue interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// TokenReader caches the token of each token secret it is asked for. Safe for concurrent use:
// concurrent callers of one secret share one read.
type TokenReader struct {
	Secrets SecretsManager
	// Reports and QueueURL: where a token that iAdvize refused is reported (the broker's SQS
	// FIFO queue). Without them a refused token is read again once, and not reported.
	Reports  Queue
	QueueURL string
	// Margin: read again this long before expires_at (5 minutes).
	Margin time.Duration
	// Recheck: a token already inside the margin (the broker is late) is read again after this.
	Recheck time.Duration
	// Backoff, MaxBackoff: after a failed read, wait Backoff, doubling, at most MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// NewTokenWait: after a report, how long to wait for the broker's new token (30 s), reading
	// again after ReportBackoff, doubling, at most MaxReportBackoff (1 s, 5 s): the broker
	// publishes a new token seconds after the report, so the reads stay close together.
	NewTokenWait                    time.Duration
	ReportBackoff, MaxReportBackoff time.Duration
	// CallTimeout bounds each Secrets Manager and SQS call (10 s).
	CallTimeout time.Duration
	// TokenFile: a token record mounted as a file (a Kubernetes Secret that the External
	// Secrets Operator syncs), read instead of Secrets Manager and again every Recheck.
	// Secrets Manager is read only when the file holds the token iAdvize refused (the file
	// lags the secret by the operator's refresh interval and the kubelet's sync), or cannot
	// be used. Empty: Secrets Manager only.
	TokenFile string

	mu      sync.Mutex
	entries map[string]*entry
	hinted  sync.Once
}

type cached struct {
	token       string
	expiresAt   time.Time
	readAgainAt time.Time
	// arn: the secret's full ARN, as GetSecretValue answered it ("" when read from
	// TokenFile), which reports name the secret by.
	arn string
}

type failure struct {
	err     error
	inARow  int
	retryAt time.Time
}

// One cache entry per token secret, keyed by the id exactly as given: `team/a` and `team_a`
// (two iAdvize users) never share one.
type entry struct {
	mu      sync.Mutex
	current *cached
	failed  *failure
	reading chan struct{} // closed when the read in flight ends
	// reported: the token this process is reporting, so that concurrent callers that got
	// the same 401 send one report between them; cleared when the wait for a new token ends.
	reported string
}

// NewTokenReader uses the given clients (reports: nil for none) with the defaults above;
// IADVIZE_TOKEN_RECHECK_SECONDS overrides Recheck, IADVIZE_REPORT_WAIT_SECONDS NewTokenWait
// (as in the Node and Python readers), IADVIZE_TOKEN_FILE sets TokenFile.
func NewTokenReader(secrets SecretsManager, reports Queue, queueURL string) *TokenReader {
	recheck := 30 * time.Second
	if s, err := strconv.ParseFloat(os.Getenv("IADVIZE_TOKEN_RECHECK_SECONDS"), 64); err == nil && s > 0 {
		recheck = time.Duration(s * float64(time.Second))
	}
	newTokenWait := 30 * time.Second
	if s, err := strconv.ParseFloat(os.Getenv("IADVIZE_REPORT_WAIT_SECONDS"), 64); err == nil && s >= 0 {
		newTokenWait = time.Duration(s * float64(time.Second))
	}
	return &TokenReader{
		Secrets: secrets, Reports: reports, QueueURL: queueURL,
		Margin: 5 * time.Minute, Recheck: recheck,
		Backoff: time.Second, MaxBackoff: 30 * time.Second,
		NewTokenWait: newTokenWait, ReportBackoff: time.Second, MaxReportBackoff: 5 * time.Second,
		CallTimeout: 10 * time.Second,
		TokenFile:   os.Getenv("IADVIZE_TOKEN_FILE"),
		entries:     map[string]*entry{},
	}
}

// messageGroupID is the SQS message group of the reports of secretID: the id itself, or its
// SHA-256 hex when longer than the 128 characters SQS allows.
func messageGroupID(secretID string) string {
	if len(secretID) <= 128 {
		return secretID
	}
	digest := sha256.Sum256([]byte(secretID))
	return hex.EncodeToString(digest[:])
}

func (r *TokenReader) entry(secretID string) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[secretID]
	if !ok {
		e = &entry{}
		r.entries[secretID] = e
	}
	return e
}

// usable is the cached token if it has not expired, even when it is due for a new read.
func (e *entry) usable(now time.Time) (string, bool) {
	if e.current != nil && now.Before(e.current.expiresAt) {
		return e.current.token, true
	}
	return "", false
}

// Token is the current token of secretID. rejected: a token iAdvize just refused, which is
// never handed out again from the cache (the secret is read at once, even during a backoff).
func (r *TokenReader) Token(ctx context.Context, secretID, rejected string) (string, error) {
	if secretID == "" {
		return "", errors.New("no token secret: set IADVIZE_TOKEN_SECRET_ID or pass a secret id")
	}
	e := r.entry(secretID)
	for {
		e.mu.Lock()
		now := time.Now()
		if rejected != "" && e.current != nil && e.current.token == rejected {
			e.current, e.failed = nil, nil
		}
		if e.current != nil && now.Before(e.current.readAgainAt) {
			defer e.mu.Unlock()
			return e.current.token, nil
		}
		if e.reading != nil {
			if token, ok := e.usable(now); ok { // a read is under way: no need to wait for it
				e.mu.Unlock()
				return token, nil
			}
			reading := e.reading
			e.mu.Unlock()
			select {
			case <-reading:
				rejected = "" // what that read found is the answer
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		if e.failed != nil && now.Before(e.failed.retryAt) {
			defer e.mu.Unlock()
			if token, ok := e.usable(now); ok {
				return token, nil
			}
			return "", e.failed.err
		}
		reading := make(chan struct{})
		e.reading = reading
		e.mu.Unlock()

		current, err := r.read(ctx, secretID, rejected)

		e.mu.Lock()
		e.reading = nil
		close(reading)
		defer e.mu.Unlock()
		if err == nil {
			e.current, e.failed = current, nil
			return current.token, nil
		}
		now = time.Now()
		inARow := 1
		if e.failed != nil {
			inARow = e.failed.inARow + 1
		}
		wait := r.MaxBackoff
		if inARow < 16 && r.Backoff<<(inARow-1) < r.MaxBackoff {
			wait = r.Backoff << (inARow - 1)
		}
		wait += time.Duration(rand.Int63n(int64(wait)/4 + 1)) // jitter that only lengthens
		token, ok := e.usable(now)
		if ok && now.Add(wait).After(e.current.expiresAt) {
			wait = e.current.expiresAt.Sub(now) // try again at expiry
		}
		e.failed = &failure{err: err, inARow: inARow, retryAt: now.Add(wait)}
		if ok {
			// Secrets Manager throttled or unreachable: a token that has not expired still works.
			fmt.Fprintf(os.Stderr, "reading %s failed (%v); using the cached token until it expires\n", secretID, err)
			return token, nil
		}
		return "", err
	}
}

// read is one GetSecretValue of AWSCURRENT, checked to be an unexpired token record; with
// a TokenFile, the file first, unless it holds the rejected token.
func (r *TokenReader) read(ctx context.Context, secretID, rejected string) (*cached, error) {
	if r.TokenFile != "" {
		text, err := os.ReadFile(r.TokenFile)
		if err == nil {
			current, err := r.parse(r.TokenFile, string(text))
			if err == nil && current.token != rejected {
				// The file costs nothing to read: look again soon, to follow the operator's syncs.
				if again := time.Now().Add(r.Recheck); again.Before(current.readAgainAt) {
					current.readAgainAt = again
				}
				return current, nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
	defer cancel()
	out, err := r.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(secretID),
		VersionStage: aws.String("AWSCURRENT"),
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s from Secrets Manager failed: %w", secretID, err)
	}
	if out.SecretBinary != nil {
		return nil, fmt.Errorf("secret %s holds binary data (SecretBinary), not a token record; only the broker should write it (run `iadvize-token refresh --force %s`)", secretID, secretID)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("secret %s holds no token record yet; is the broker running?", secretID)
	}
	current, err := r.parse(secretID, *out.SecretString)
	if err == nil {
		current.arn = aws.ToString(out.ARN)
	}
	return current, err
}

// parse checks that text (the value of secretID) is an unexpired token record.
func (r *TokenReader) parse(secretID, text string) (*cached, error) {
	// What the secret holds when it is not a token record, in words (never the value).
	notARecord := fmt.Errorf("secret %s holds no token record yet; is the broker running?", secretID)
	if strings.TrimSpace(text) == "" {
		return nil, notARecord
	}
	var record struct {
		AccessToken string `json:"access_token"`
		ExpiresAt   string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(text), &record); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("secret %s holds no token record (the value is not JSON); is the broker running?", secretID)
		}
		return nil, notARecord // JSON, but not the record's shape (the error would quote no value, but say less)
	}
	token := strings.TrimSpace(record.AccessToken)
	expiresAt, err := time.Parse(time.RFC3339, strings.TrimSpace(record.ExpiresAt))
	if token == "" || err != nil {
		return nil, notARecord
	}
	now := time.Now()
	if !now.Before(expiresAt) {
		return nil, fmt.Errorf("the token in %s expired at %s; is the broker running?", secretID, expiresAt.UTC().Format(time.RFC3339))
	}
	readAgainAt := expiresAt.Add(-r.Margin)
	if !readAgainAt.After(now) {
		readAgainAt = now.Add(r.Recheck)
		if readAgainAt.After(expiresAt) {
			readAgainAt = expiresAt
		}
	}
	return &cached{token: token, expiresAt: expiresAt, readAgainAt: readAgainAt}, nil
}

// Rejected handles a 401 from iAdvize for token: it reads the secret again once; a new token
// is returned at once. The same token means the broker does not know that iAdvize refuses
// it: report it (when a queue is set) and read again after ReportBackoff, doubling, at most
// MaxReportBackoff, for at most NewTokenWait (1 s doubling to 5 s, 30 s in all), until the
// broker publishes a new one. The error says why there is none.
func (r *TokenReader) Rejected(ctx context.Context, secretID, token string) (string, error) {
	again, err := r.Token(ctx, secretID, token)
	if err != nil || again != token {
		return again, err
	}
	if r.Reports == nil || r.QueueURL == "" {
		r.hinted.Do(func() {
			fmt.Fprintln(os.Stderr, "iAdvize refused the current token; set IADVIZE_REPORT_QUEUE_URL (the broker's report queue, with sqs:SendMessage) so that the broker replaces it within a minute")
		})
		return "", fmt.Errorf("iAdvize refused the token of %s (HTTP 401), and the secret holds no other", secretID)
	}
	e := r.entry(secretID)
	e.mu.Lock()
	first := e.reported != token
	e.reported = token
	e.mu.Unlock()
	// Reports name the secret by its ARN, however this process names it, so that one
	// secret's reports share one message group.
	reportedID := secretID
	e.mu.Lock()
	if e.current != nil && e.current.arn != "" {
		reportedID = e.current.arn
	}
	e.mu.Unlock()
	if first {
		if err := r.report(ctx, reportedID, token); err != nil {
			e.mu.Lock()
			e.reported = ""
			e.mu.Unlock()
			return "", fmt.Errorf("iAdvize refused the token of %s (HTTP 401), and reporting it failed: %w", secretID, err)
		}
	}
	deadline := time.Now().Add(r.NewTokenWait)
	for next := r.ReportBackoff; ; next *= 2 {
		if next > r.MaxReportBackoff {
			next = r.MaxReportBackoff
		}
		wait := next
		if left := time.Until(deadline); wait > left {
			wait = left
		}
		if wait <= 0 {
			// A later 401 with the same token reports it again, as the other readers do
			// (the queue drops a copy sent within five minutes of the first).
			e.mu.Lock()
			if e.reported == token {
				e.reported = ""
			}
			e.mu.Unlock()
			return "", fmt.Errorf("iAdvize refused the token of %s (HTTP 401); reported it, and no new token came within %s", secretID, r.NewTokenWait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		again, err := r.Token(ctx, secretID, token)
		if err == nil && again != token {
			return again, nil
		}
	}
}

// report sends {"action": "report-rejected", "secret_id", "token_sha256"} to the report queue:
// the token's SHA-256, never the token. secretID: the secret's full ARN when known, which is
// also the message group (its SHA-256 hex beyond SQS's 128 characters), so the broker handles
// one secret's reports one batch at a time whatever name each process reads it by. The queue
// is FIFO with content-based deduplication, so the same report from many processes within
// five minutes is handled once.
func (r *TokenReader) report(ctx context.Context, secretID, token string) error {
	digest := sha256.Sum256([]byte(token))
	body, err := json.Marshal(map[string]string{
		"action":       "report-rejected",
		"secret_id":    secretID,
		"token_sha256": hex.EncodeToString(digest[:]),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
	defer cancel()
	_, err = r.Reports.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:       aws.String(r.QueueURL),
		MessageBody:    aws.String(string(body)),
		MessageGroupId: aws.String(messageGroupID(secretID)),
	})
	if err == nil {
		fmt.Fprintf(os.Stderr, "iAdvize refused the current token of %s; reported it to the broker\n", secretID)
	}
	return err
}
