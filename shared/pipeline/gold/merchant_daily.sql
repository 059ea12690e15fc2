-- merchant_daily: each merchant's transactions per UTC day and currency.
-- keys: merchant_id, day
SELECT
    merchant_id,
    merchant_category,
    event_date AS day,
    currency,
    count(*) AS txn_count,
    CAST(sum(amount) AS DECIMAL(38, 2)) AS total_amount,
    CAST(avg(amount) AS DECIMAL(18, 2)) AS avg_amount,
    max(amount) AS max_amount,
    count(DISTINCT account_id) AS unique_accounts,
    count(DISTINCT country) AS countries,
    CAST(sum(CASE WHEN channel = 'ecommerce' THEN 1 ELSE 0 END) AS BIGINT) AS ecommerce_txns,
    CAST(sum(CASE WHEN channel = 'atm' THEN 1 ELSE 0 END) AS BIGINT) AS atm_txns
FROM silver.payment_transaction
GROUP BY merchant_id, merchant_category, event_date, currency
