wrk.method = "POST"
wrk.body = '{"user_id":"user-00042","event":{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}'
wrk.headers["Content-Type"] = "application/json"
