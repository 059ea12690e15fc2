-- item_popularity: how often each item is viewed, clicked, carted and bought, and by how many.
-- keys: item_id
WITH counts AS (
    SELECT
        item_id,
        CAST(sum(CASE WHEN action = 'view' THEN 1 ELSE 0 END) AS BIGINT) AS views,
        CAST(sum(CASE WHEN action = 'click' THEN 1 ELSE 0 END) AS BIGINT) AS clicks,
        CAST(sum(CASE WHEN action = 'add_to_cart' THEN 1 ELSE 0 END) AS BIGINT) AS add_to_carts,
        CAST(sum(CASE WHEN action = 'purchase' THEN 1 ELSE 0 END) AS BIGINT) AS purchases,
        count(DISTINCT user_id) AS unique_users,
        count(DISTINCT session_id) AS sessions,
        max(event_time) AS last_seen
    FROM silver.app_interaction
    GROUP BY item_id
)
SELECT
    item_id,
    views,
    clicks,
    add_to_carts,
    purchases,
    unique_users,
    sessions,
    last_seen,
    CAST(purchases AS DOUBLE) / NULLIF(views, 0) AS view_to_purchase,
    views + 2 * clicks + 3 * add_to_carts + 5 * purchases AS popularity_score,
    CAST(
        row_number() OVER (
            ORDER BY views + 2 * clicks + 3 * add_to_carts + 5 * purchases DESC, item_id
        ) AS BIGINT
    ) AS popularity_rank  -- int64 on every engine (Spark's row_number is an int)
FROM counts
