-- Window, supersession, categories, priority and score of the default pipeline.
--
-- Input: table `signals`, every live signal of the households touched by one
-- micro-batch (columns: household_id, dong_code, feed, category, subject, kind,
-- months_overdue, amount_krw, disconnected, occurred_on, observed_at, event_id).
--
-- Output contract, read by the engine: one row per reason (a qualifying signal)
-- of every household that reaches a priority, columns
--   household_id, dong_code, priority ('P1'|'P2'|'P3'), score, window_end,
--   feed, category, subject, kind, months_overdue, amount_krw, disconnected,
--   occurred_on, observed_at
-- ordered by household_id. Each $-brace placeholder is filled from [params]
-- in pipeline.toml.
WITH newest AS (
    SELECT s.*,
           -- the window of a household ends at its newest signal
           MAX(observed_at) OVER (PARTITION BY household_id) AS window_end,
           -- a later signal on the same subject (one utility, the insurance
           -- premium, one person's job) supersedes the earlier one
           ROW_NUMBER() OVER (PARTITION BY household_id, feed, subject
                              ORDER BY observed_at DESC, event_id DESC) AS recency
    FROM signals s
),
live AS (
    SELECT *,
           CASE category
               WHEN 'utility' THEN COALESCE(months_overdue, 0) >= ${utility_min_months}
                                   OR COALESCE(disconnected, false)
               WHEN 'employment' THEN true
               WHEN 'health' THEN COALESCE(months_overdue, 0) >= ${health_min_months}
               ELSE false
           END AS qualifies
    FROM newest
    WHERE recency = 1
      AND observed_at >= window_end - INTERVAL '${window_days} days'
),
household AS (
    SELECT household_id,
           -- the newest signal's dong: a household that moved is served by its new dong
           first_value(dong_code ORDER BY observed_at DESC, event_id DESC) AS dong_code,
           MAX(window_end) AS window_end,
           COUNT(DISTINCT CASE WHEN qualifies THEN category END) AS categories,
           SUM(CASE WHEN qualifies AND COALESCE(disconnected, false) THEN 1 ELSE 0 END) AS disconnections,
           SUM(CASE WHEN qualifies THEN LEAST(COALESCE(months_overdue, 0), ${months_cap}) ELSE 0 END) AS months,
           SUM(CASE WHEN qualifies THEN COALESCE(amount_krw, 0) ELSE 0 END) AS amount_krw,
           SUM(CASE WHEN qualifies AND category = 'employment' THEN 1 ELSE 0 END) AS employment_signals
    FROM live
    GROUP BY household_id
),
assessed AS (
    SELECT household_id, dong_code, window_end,
           CASE
               WHEN categories >= 3 OR (disconnections > 0 AND categories >= 2) THEN 'P1'
               WHEN categories = 2 OR disconnections > 0 THEN 'P2'
               WHEN categories = 1 THEN 'P3'
           END AS priority,
           ROUND(
                 ${category_weight} * categories
               + ${disconnected_weight} * disconnections
               + ${months_weight} * months
               + ${amount_weight} * LOG10(1 + CAST(amount_krw AS DOUBLE) / 10000)
               + ${employment_weight} * employment_signals
           , 2) AS score
    FROM household
    WHERE categories > 0
)
SELECT a.household_id, a.dong_code, a.priority, a.score, a.window_end,
       l.feed, l.category, l.subject, l.kind, l.months_overdue, l.amount_krw,
       l.disconnected, l.occurred_on, l.observed_at
FROM assessed a
JOIN live l ON l.household_id = a.household_id AND l.qualifies
ORDER BY a.household_id, l.observed_at, l.feed, l.subject
