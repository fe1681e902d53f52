// The reader in use: calls iAdvize GraphQL `{ me { username } }` with the broker's token and
// prints the username.
//
//	IADVIZE_TOKEN_SECRET_ID=iadvize/token \
//	IADVIZE_REPORT_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/iadvize-token-broker-reports.fifo \
//	  ./read-token
//
// READER_CALLS, READER_PAUSE_MS, READER_SECRET_IDS (several secrets, comma-separated, read in
// turn by each call), READER_PARALLEL (each call made by that many goroutines at once),
// READER_KEEP_GOING=1 (a failed call is printed on stderr and the next call made): how the
// project's tests drive it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

var (
	apiURL = envOr("IADVIZE_API_URL", "https://api.iadvize.com")
	client = &http.Client{Timeout: 10 * time.Second}
)

func envOr(key, otherwise string) string {
	if value := os.Getenv(key); value != "" {
		return value
	}
	return otherwise
}

// post sends one GraphQL query with token; the answer's status and body.
func post(ctx context.Context, token, query string) (int, []byte, error) {
	body, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		return 0, nil, err
	}
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	request.Header.Set("Authorization", "Bearer "+token)
	request.Header.Set("Content-Type", "application/json")
	response, err := client.Do(request)
	if err != nil {
		return 0, nil, err // net/http's errors name the URL, never the headers
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	return response.StatusCode, answer, err
}

// GraphQL posts query with the token of secretID; after a 401, the reader's Rejected path
// (one re-read; a report and a bounded wait when the token is unchanged), then one retry.
func GraphQL(ctx context.Context, tokens *TokenReader, secretID, query string) ([]byte, error) {
	token, err := tokens.Token(ctx, secretID, "")
	if err != nil {
		return nil, err
	}
	status, answer, err := post(ctx, token, query)
	if err == nil && status == http.StatusUnauthorized {
		if token, err = tokens.Rejected(ctx, secretID, token); err != nil {
			return nil, err
		}
		status, answer, err = post(ctx, token, query)
	}
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("iAdvize GraphQL answered HTTP %d", status)
	}
	return answer, nil
}

func run(ctx context.Context) error {
	// Region, credentials: the SDK's usual chain (environment, shared files, IRSA / Pod
	// Identity, the ECS task role).
	var options []func(*config.LoadOptions) error
	if endpoint := os.Getenv("AWS_ENDPOINT_URL"); endpoint != "" {
		// SDK releases from late 2023 on read AWS_ENDPOINT_URL by themselves; older ones (the
		// one Debian packages) need it spelled out. Used by the tests (a local stand-in).
		resolver := aws.EndpointResolverWithOptionsFunc(func(service, region string, _ ...interface{}) (aws.Endpoint, error) {
			return aws.Endpoint{URL: endpoint, SigningRegion: region}, nil
		})
		options = append(options, config.WithEndpointResolverWithOptions(resolver))
	}
	cfg, err := config.LoadDefaultConfig(ctx, options...)
	if err != nil {
		return err
	}
	queueURL := os.Getenv("IADVIZE_REPORT_QUEUE_URL")
	var reports Queue
	if queueURL != "" {
		reports = sqs.NewFromConfig(cfg)
	}
	tokens := NewTokenReader(secretsmanager.NewFromConfig(cfg), reports, queueURL)

	secretIDs := []string{os.Getenv("IADVIZE_TOKEN_SECRET_ID")}
	if ids, ok := os.LookupEnv("READER_SECRET_IDS"); ok {
		secretIDs = strings.Split(ids, ",")
	}
	calls, pause := 1, 0
	if n, err := strconv.Atoi(os.Getenv("READER_CALLS")); err == nil {
		calls = n
	}
	if n, err := strconv.Atoi(os.Getenv("READER_PAUSE_MS")); err == nil {
		pause = n
	}
	parallel := 1
	if n, err := strconv.Atoi(os.Getenv("READER_PARALLEL")); err == nil && n > 0 {
		parallel = n
	}
	for call := 0; call < calls; call++ {
		if call > 0 {
			time.Sleep(time.Duration(pause) * time.Millisecond)
		}
		for _, secretID := range secretIDs {
			usernames := make([]string, parallel)
			errs := make([]error, parallel)
			var wg sync.WaitGroup
			for i := 0; i < parallel; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					usernames[i], errs[i] = username(ctx, tokens, secretID)
				}(i)
			}
			wg.Wait()
			for i := range usernames {
				if errs[i] != nil {
					if os.Getenv("READER_KEEP_GOING") != "1" {
						return errs[i]
					}
					fmt.Fprintln(os.Stderr, errs[i])
					continue
				}
				fmt.Println(usernames[i])
			}
		}
	}
	return nil
}

// username asks iAdvize GraphQL `{ me { username } }` with the token of secretID.
func username(ctx context.Context, tokens *TokenReader, secretID string) (string, error) {
	answer, err := GraphQL(ctx, tokens, secretID, "{ me { username } }")
	if err != nil {
		return "", err
	}
	var me struct {
		Data struct {
			Me struct {
				Username string `json:"username"`
			} `json:"me"`
		} `json:"data"`
	}
	if err := json.Unmarshal(answer, &me); err != nil {
		return "", fmt.Errorf("iAdvize GraphQL answered something that is not JSON: %w", err)
	}
	return me.Data.Me.Username, nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
