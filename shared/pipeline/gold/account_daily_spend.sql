-- account_daily_spend: what each account spent per UTC day of the event time, per currency.
-- keys: account_id, day, currency
SELECT
    account_id,
    event_date AS day,
    currency,
    count(*) AS txn_count,
    CAST(sum(amount) AS DECIMAL(38, 2)) AS total_amount
FROM silver.payment_transaction
GROUP BY account_id, event_date, currency
