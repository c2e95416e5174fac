-- /predict with the reference quickstart body, for a user drawn at random from
-- user-00000 .. user-01999 on each request, so an online store is read for many keys
-- (bench/predict.lua asks for one user only).
math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
    local user = string.format("user-%05d", math.random(0, 1999))
    local body = '{"user_id":"' .. user .. '","event":{"transaction_amount":83.2,'
        .. '"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}'
    return wrk.format(nil, nil, nil, body)
end
