-- Daily candidate lists: which households are on today's list of each dong,
-- and in which order.
--
-- Input: table `candidates`, one row per household currently at a priority
-- (columns household_id, dong_code, priority, score, categories, categories_ko, reasons_ko,
-- reasons_en, first_signal_at, last_signal_at, first_signal_date,
-- last_signal_date, times_alerted_before, on_previous_list, list_at, and from
-- the case state status, status_ko, last_outcome, last_outcome_date, due_date,
-- overdue, in_case, case_opened_date, case_age_days, worsened, serving_dong, open,
-- queue_order, queue_sub, queue_at (the work queue's order), attempts, next_attempt_date, overdue_days,
-- next_step_ko, next_step_en: the household's open work, the same model the
-- work queue reads), and table
-- `dongs` (dong_code, name_ko, name_en): the dongs this deployment serves.
--
-- Output contract, read by the engine: list_dong (a served dong code, or
-- 'unassigned' for a valid code no served dong has: never dropped), name_ko,
-- name_en, rank, in_case (true: the row goes to the dong's cases list, ranked
-- apart), escalation ('overdue' or 'unreachable': the row also goes to the city
-- team's escalations list; NULL otherwise) and the candidate columns, ordered by
-- list_dong, in_case, rank. Open households come first, in the work queue's
-- order; an open household stays on the list until someone reaches it, even
-- after its signals left the window.
WITH current AS (
    SELECT c.*,
           -- evidence still inside the window on list day
           c.last_signal_at >= c.list_at - arrow_cast(${window_ms}, 'Duration(Millisecond)') AS in_window
    FROM candidates c
),
listed AS (
    -- households at a priority, and every open household (nobody reached
    -- yet) whatever its evidence
    SELECT * FROM current WHERE in_window OR open
),
placed AS (
    SELECT cur.*,
           COALESCE(d.dong_code, 'unassigned') AS list_dong,
           COALESCE(d.name_ko, '미배정 (시 통합조사팀)') AS name_ko,
           COALESCE(d.name_en, 'unassigned (city team)') AS name_en
    FROM listed cur
    -- the office serving a household with a case record, else the dong of
    -- its newest signal
    LEFT JOIN dongs d ON d.dong_code = COALESCE(cur.serving_dong, cur.dong_code)
)
SELECT list_dong, name_ko, name_en,
       -- the work queue's order (README, "Open work"): open households by
       -- tier (queue_order), priority and the tier's time, then the rest
       ROW_NUMBER() OVER (PARTITION BY list_dong, in_case
                          ORDER BY queue_order ASC, queue_sub ASC, queue_at ASC,
                                   score DESC, first_signal_at ASC, household_id ASC) AS rank,
       household_id, dong_code, priority, score, categories, categories_ko, reasons_ko, reasons_en,
       first_signal_date, last_signal_date, in_window,
       CAST((CAST(list_at AS BIGINT) - CAST(first_signal_at AS BIGINT)) / 86400000 AS BIGINT) AS days_since_first_signal,
       NOT on_previous_list AS new_since_previous_list,
       times_alerted_before,
       status, status_ko, open, next_step_ko, next_step_en, attempts,
       next_attempt_date, overdue_days, last_outcome, last_outcome_date, due_date,
       overdue, in_case, case_opened_date, case_age_days, worsened,
       CASE WHEN in_case THEN NULL
            WHEN status = 'unreachable' THEN 'unreachable'
            WHEN overdue THEN 'overdue' END AS escalation
FROM placed
ORDER BY list_dong, in_case, rank
