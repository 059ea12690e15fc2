-- merchant_daily: each merchant's transactions per UTC day and currency.
-- avg_amount is the mean rounded half up to the cent, computed in integer cents: DuckDB averages
-- a DECIMAL as a DOUBLE (449.245 becomes 449.2449...) and Spark exactly, so `avg` disagrees on
-- half cents; integers agree on every engine.
-- keys: merchant_id, day, currency
SELECT
    merchant_id,
    merchant_category,
    event_date AS day,
    currency,
    count(*) AS txn_count,
    CAST(sum(amount) AS DECIMAL(38, 2)) AS total_amount,
    CAST(
        ((2 * sum(CAST(amount * 100 AS BIGINT)) + count(*)) // (2 * count(*))) / 100.0
        AS DECIMAL(18, 2)
    ) AS avg_amount,
    max(amount) AS max_amount,
    count(DISTINCT account_id) AS unique_accounts,
    count(DISTINCT country) AS countries,
    CAST(sum(CASE WHEN channel = 'ecommerce' THEN 1 ELSE 0 END) AS BIGINT) AS ecommerce_txns,
    CAST(sum(CASE WHEN channel = 'atm' THEN 1 ELSE 0 END) AS BIGINT) AS atm_txns
FROM silver.payment_transaction
GROUP BY merchant_id, merchant_category, event_date, currency
