-- item_pairs: items that occur in the same sessions (each pair once, item_a < item_b).
-- keys: item_a, item_b
WITH session_items AS (
    SELECT DISTINCT session_id, item_id
    FROM silver.app_interaction
),
item_sessions AS (
    SELECT item_id, count(*) AS sessions
    FROM session_items
    GROUP BY item_id
),
pairs AS (
    SELECT a.item_id AS item_a, b.item_id AS item_b, count(*) AS sessions_together
    FROM session_items AS a
    JOIN session_items AS b ON a.session_id = b.session_id AND a.item_id < b.item_id
    GROUP BY a.item_id, b.item_id
)
SELECT
    p.item_a,
    p.item_b,
    p.sessions_together,
    sa.sessions AS sessions_a,
    sb.sessions AS sessions_b,
    CAST(p.sessions_together AS DOUBLE)
        / (sa.sessions + sb.sessions - p.sessions_together) AS jaccard
FROM pairs AS p
JOIN item_sessions AS sa ON sa.item_id = p.item_a
JOIN item_sessions AS sb ON sb.item_id = p.item_b
