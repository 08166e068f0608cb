-- Window, categories, priority and score of the default pipeline.
--
-- Input: table `signals`, every live signal of the households touched by one
-- micro-batch (columns: household_id, dong_code, feed, category, subject, kind,
-- months_overdue, amount_krw, disconnected, occurred_on, observed_at,
-- window_end, current_dong, event_key, newest_event_key). `window_end` is the household's newest
-- observed_at and `current_dong` the dong_code of that newest signal (of two
-- at the same time, the one with the larger event_key), the same on each of
-- its rows: its window ends there, and a household that moved is served by
-- its new dong. `newest_event_key` is the event_key of that newest signal.
-- The window stage has already applied supersession: of the signals of one
-- household, feed and subject only the newest (by event time) is live.
-- Rows arrive sorted by household_id, observed_at, feed, subject, and
-- DataFusion is told so: a GROUP BY household_id streams, and an ORDER BY on
-- a prefix of that order needs no sort.
--
-- Output contract, read by the engine: one row per reason (a qualifying signal)
-- of every household that reaches a priority, columns
--   household_id, dong_code, priority ('P1'|'P2'|'P3'), score, window_end,
--   feed, category, subject, kind, months_overdue, amount_krw, disconnected,
--   occurred_on, observed_at, event_key, newest_event_key
-- ordered by household_id, then the reasons in the order the alert lists them.
-- The reasons' event keys in that order and newest_event_key identify the
-- alert decision (its alert_id): pass them through unchanged. Each $-brace placeholder is filled from [params]
-- in pipeline.toml.
WITH live AS (
    -- the window of a household ends at its newest signal
    SELECT s.*,
           -- which signals count towards a category (a plain boolean
           -- expression: cheaper per row than CASE, which filters the batch
           -- once per branch)
              (s.category = 'utility' AND (COALESCE(s.months_overdue, 0) >= ${utility_min_months}
                                           OR COALESCE(s.disconnected, false)))
           OR s.category = 'employment'
           OR (s.category = 'health' AND COALESCE(s.months_overdue, 0) >= ${health_min_months})
           AS qualifies
    FROM signals s
    WHERE s.observed_at >= s.window_end - arrow_cast(${window_ms}, 'Duration(Millisecond)')
),
household AS (
    SELECT l.household_id,
           MAX(l.window_end) AS window_end,
           -- distinct qualifying categories, one term per category named in `live`
           -- (cheaper than COUNT(DISTINCT) or a second aggregation joined back);
           -- the terms count with CAST(boolean AS BIGINT), 1 or 0, rather than
           -- CASE WHEN ... THEN 1 ELSE 0, which DataFusion evaluates branch by
           -- branch
             MAX(CAST(l.qualifies AND l.category = 'utility' AS BIGINT))
           + MAX(CAST(l.qualifies AND l.category = 'employment' AS BIGINT))
           + MAX(CAST(l.qualifies AND l.category = 'health' AS BIGINT)) AS categories,
           SUM(CAST(l.qualifies AND COALESCE(l.disconnected, false) AS BIGINT)) AS disconnections,
           SUM(CAST(l.qualifies AS BIGINT) * LEAST(COALESCE(l.months_overdue, 0), ${months_cap})) AS months,
           SUM(CAST(l.qualifies AS BIGINT) * COALESCE(l.amount_krw, 0)) AS amount_krw,
           SUM(CAST(l.qualifies AND l.category = 'employment' AS BIGINT)) AS employment_signals
    FROM live l
    GROUP BY l.household_id
),
assessed AS (
    SELECT household_id, window_end,
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
SELECT a.household_id, l.current_dong AS dong_code, a.priority, a.score, a.window_end,
       l.feed, l.category, l.subject, l.kind, l.months_overdue, l.amount_krw,
       l.disconnected, l.occurred_on, l.observed_at, l.event_key, l.newest_event_key
FROM assessed a
JOIN live l ON l.household_id = a.household_id AND l.qualifies
ORDER BY a.household_id, l.observed_at, l.feed, l.subject
