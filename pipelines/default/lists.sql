-- Daily candidate lists: which households are on today's list of each dong,
-- and in which order.
--
-- Input: table `candidates`, one row per household currently at a priority
-- (columns household_id, dong_code, priority, score, categories, reasons_ko,
-- reasons_en, first_signal_at, last_signal_at, first_signal_date,
-- last_signal_date, times_alerted_before, on_previous_list, list_at, and from
-- the case state status, status_ko, last_outcome, last_outcome_date, due_date,
-- overdue, in_case, case_opened_date, case_age_days, worsened), and table
-- `dongs` (dong_code, name_ko, name_en): the dongs this deployment serves.
--
-- Output contract, read by the engine: list_dong (a served dong code, or
-- 'unassigned' for a valid code no served dong has: never dropped), name_ko,
-- name_en, rank, in_case (true: the row goes to the dong's cases list, ranked
-- apart), escalation ('overdue' or 'unreachable': the row also goes to the city
-- team's escalations list; NULL otherwise) and the candidate columns, ordered by
-- list_dong, in_case, rank. Overdue and unreachable households come first.
WITH current AS (
    SELECT c.*
    FROM candidates c
    -- only households whose evidence is still inside the window on list day
    WHERE c.last_signal_at >= c.list_at - arrow_cast(${window_ms}, 'Duration(Millisecond)')
),
placed AS (
    SELECT cur.*,
           COALESCE(d.dong_code, 'unassigned') AS list_dong,
           COALESCE(d.name_ko, '미배정 (시 통합조사팀)') AS name_ko,
           COALESCE(d.name_en, 'unassigned (city team)') AS name_en
    FROM current cur
    LEFT JOIN dongs d ON d.dong_code = cur.dong_code
)
SELECT list_dong, name_ko, name_en,
       ROW_NUMBER() OVER (PARTITION BY list_dong, in_case
                          ORDER BY CASE WHEN overdue OR status = 'unreachable' THEN 0 ELSE 1 END,
                                   priority ASC, score DESC, first_signal_at ASC, household_id ASC) AS rank,
       household_id, dong_code, priority, score, categories, reasons_ko, reasons_en,
       first_signal_date, last_signal_date,
       CAST((CAST(list_at AS BIGINT) - CAST(first_signal_at AS BIGINT)) / 86400000 AS BIGINT) AS days_since_first_signal,
       NOT on_previous_list AS new_since_previous_list,
       times_alerted_before,
       status, status_ko, last_outcome, last_outcome_date, due_date, overdue,
       in_case, case_opened_date, case_age_days, worsened,
       CASE WHEN in_case THEN NULL
            WHEN status = 'unreachable' THEN 'unreachable'
            WHEN overdue THEN 'overdue' END AS escalation
FROM placed
ORDER BY list_dong, in_case, rank
