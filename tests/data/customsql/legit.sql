-- Legitimate reporting queries: each must be accepted. `-- @case <id>` starts a case; `sqlite`
-- after the id means it also runs on SQLite (the demo site), `mariadb` that it runs on MariaDB.
-- @case active_users sqlite mariadb
SELECT u.id, u.firstname, u.lastname, u.email
FROM {user} u
WHERE u.deleted = 0 AND u.suspended = 0
ORDER BY u.lastname, u.firstname
-- @case users_trailing_semicolon sqlite mariadb
SELECT id, username FROM {user} WHERE deleted = 0;
-- @case users_mdl_prefix sqlite mariadb
SELECT id, username FROM mdl_user WHERE id > 1
-- @case users_prefix_word sqlite mariadb
SELECT c.id, c.fullname FROM prefix_course c WHERE c.id > 1
-- @case course_list sqlite mariadb
SELECT c.id, c.shortname, c.fullname, cc.name AS category
FROM {course} c
JOIN {course_categories} cc ON cc.id = c.category
WHERE c.id <> 1
ORDER BY cc.name, c.fullname
-- @case enrolments_per_course sqlite mariadb
SELECT c.fullname, COUNT(DISTINCT ue.userid) AS enrolled
FROM {course} c
JOIN {enrol} e ON e.courseid = c.id
JOIN {user_enrolments} ue ON ue.enrolid = e.id
GROUP BY c.id, c.fullname
ORDER BY enrolled DESC
-- @case completions_per_course_having sqlite mariadb
SELECT c.shortname, COUNT(*) AS completed
FROM {course_completions} cc
JOIN {course} c ON c.id = cc.course
WHERE cc.timecompleted IS NOT NULL
GROUP BY c.shortname
HAVING COUNT(*) >= 1
-- @case completion_rate_case sqlite mariadb
SELECT c.fullname,
       SUM(CASE WHEN cc.timecompleted IS NOT NULL THEN 1 ELSE 0 END) AS done,
       COUNT(cc.id) AS total,
       ROUND(100.0 * SUM(CASE WHEN cc.timecompleted IS NOT NULL THEN 1 ELSE 0 END) / COUNT(cc.id), 1) AS pct
FROM {course} c
LEFT JOIN {course_completions} cc ON cc.course = c.id
GROUP BY c.id, c.fullname
-- @case logins_by_day sqlite mariadb
SELECT DATE(FROM_UNIXTIME(l.timecreated)) AS day, COUNT(*) AS logins
FROM {logstore_standard_log} l
WHERE l.eventname = '\\core\\event\\user_loggedin'
GROUP BY DATE(FROM_UNIXTIME(l.timecreated))
ORDER BY day
-- @case events_by_month sqlite mariadb
SELECT DATE_FORMAT(FROM_UNIXTIME(timecreated), '%Y-%m') AS month, COUNT(*) AS events
FROM {logstore_standard_log}
GROUP BY month
ORDER BY month
-- @case window_rank_by_grade sqlite mariadb
SELECT gg.userid, gi.courseid, gg.finalgrade,
       RANK() OVER (PARTITION BY gi.courseid ORDER BY gg.finalgrade DESC) AS place
FROM {grade_grades} gg
JOIN {grade_items} gi ON gi.id = gg.itemid
WHERE gi.itemtype = 'course'
-- @case window_row_number_latest_attempt sqlite mariadb
SELECT *
FROM (
  SELECT qa.quiz, qa.userid, qa.sumgrades,
         ROW_NUMBER() OVER (PARTITION BY qa.quiz, qa.userid ORDER BY qa.attempt DESC) AS rn
  FROM {quiz_attempts} qa
  WHERE qa.state = 'finished'
) latest
WHERE latest.rn = 1
-- @case window_running_total sqlite mariadb
SELECT userid, timecreated,
       COUNT(*) OVER (PARTITION BY userid ORDER BY timecreated ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
FROM {logstore_standard_log}
WHERE courseid > 1
-- @case window_lag_gap sqlite mariadb
SELECT userid, timecreated,
       timecreated - LAG(timecreated) OVER (PARTITION BY userid ORDER BY timecreated, id) AS gap
FROM {logstore_standard_log}
-- @case named_window sqlite mariadb
SELECT userid, SUM(finalgrade) OVER w AS total
FROM {grade_grades}
WINDOW w AS (PARTITION BY userid)
-- @case cte_simple sqlite mariadb
WITH enrolled AS (
  SELECT ue.userid, e.courseid
  FROM {user_enrolments} ue
  JOIN {enrol} e ON e.id = ue.enrolid
)
SELECT courseid, COUNT(*) AS n FROM enrolled GROUP BY courseid
-- @case cte_two_chained sqlite mariadb
WITH enrolled AS (
  SELECT ue.userid, e.courseid FROM {user_enrolments} ue JOIN {enrol} e ON e.id = ue.enrolid
),
completed AS (
  SELECT userid, course AS courseid FROM {course_completions} WHERE timecompleted > 0
)
SELECT en.courseid, COUNT(en.userid) AS enrolled, COUNT(co.userid) AS completed
FROM enrolled en
LEFT JOIN completed co ON co.userid = en.userid AND co.courseid = en.courseid
GROUP BY en.courseid
-- @case cte_recursive_categories sqlite mariadb
WITH RECURSIVE tree (id, name, depth) AS (
  SELECT id, name, 1 FROM {course_categories} WHERE parent = 0
  UNION ALL
  SELECT cc.id, cc.name, tree.depth + 1 FROM {course_categories} cc JOIN tree ON cc.parent = tree.id
)
SELECT id, name, depth FROM tree ORDER BY depth, name
-- @case cte_named_like_table sqlite mariadb
WITH user AS (SELECT id, firstname FROM {user} WHERE deleted = 0)
SELECT user.firstname FROM user
-- @case union_all_people sqlite mariadb
SELECT 'student' AS kind, COUNT(*) AS n FROM {role_assignments} ra JOIN {role} r ON r.id = ra.roleid WHERE r.shortname = 'student'
UNION ALL
SELECT 'teacher', COUNT(*) FROM {role_assignments} ra JOIN {role} r ON r.id = ra.roleid WHERE r.shortname = 'editingteacher'
-- @case union_distinct_order sqlite mariadb
SELECT userid FROM {course_completions}
UNION
SELECT userid FROM {quiz_attempts}
ORDER BY 1
-- @case subquery_in sqlite mariadb
SELECT u.id, u.username FROM {user} u
WHERE u.id IN (SELECT ra.userid FROM {role_assignments} ra JOIN {role} r ON r.id = ra.roleid WHERE r.shortname = 'editingteacher')
-- @case subquery_not_exists sqlite mariadb
SELECT u.id, u.username FROM {user} u
WHERE u.deleted = 0 AND NOT EXISTS (SELECT * FROM {user_enrolments} ue WHERE ue.userid = u.id)
-- @case exists_star_over_user sqlite mariadb
SELECT c.id FROM {course} c WHERE EXISTS (SELECT * FROM {user} u WHERE u.id = c.id)
-- @case scalar_subquery sqlite mariadb
SELECT c.fullname,
       (SELECT COUNT(*) FROM {course_modules} cm WHERE cm.course = c.id) AS activities
FROM {course} c
-- @case derived_table_join sqlite mariadb
SELECT c.fullname, t.n
FROM {course} c
JOIN (SELECT course, COUNT(*) AS n FROM {course_modules} GROUP BY course) t ON t.course = c.id
-- @case email_literal_keywords sqlite mariadb
SELECT id, username FROM {user} WHERE email = 'grant.delete@example.com' OR email LIKE '%drop.table%'
-- @case literal_with_sql_words sqlite mariadb
SELECT 'SELECT * FROM mdl_config; DROP TABLE x -- /*! */ @@version' AS note, id FROM {course}
-- @case literal_with_colon_time sqlite mariadb
SELECT id, '12:30' AS at, 'ratio :x' AS label FROM {course}
-- @case double_quoted_string sqlite mariadb
SELECT id FROM {user} WHERE auth = "manual"
-- @case escaped_quotes sqlite mariadb
SELECT id, 'it''s', 'say \'hi\'' FROM {course}
-- @case backtick_aliases sqlite mariadb
SELECT c.fullname AS `Course name`, COUNT(cm.id) AS `Activities (all)`
FROM {course} AS `c`
LEFT JOIN {course_modules} `cm` ON `cm`.`course` = `c`.`id`
GROUP BY c.id, c.fullname
-- @case backtick_table sqlite mariadb
SELECT `u`.`id` FROM `mdl_user` `u`
-- @case quiz_attempts_named_params sqlite mariadb
SELECT qa.userid, qa.sumgrades, FROM_UNIXTIME(qa.timefinish) AS finished
FROM {quiz_attempts} qa
JOIN {quiz} q ON q.id = qa.quiz
WHERE q.course = :courseid AND qa.timefinish >= :since
-- @case company_users_param sqlite mariadb
SELECT u.firstname, u.lastname, d.name AS department
FROM {company_users} cu
JOIN {user} u ON u.id = cu.userid
JOIN {department} d ON d.id = cu.departmentid
WHERE cu.companyid = :companyid
-- @case param_repeated sqlite mariadb
SELECT id FROM {course} WHERE id = :courseid OR category = :courseid
-- @case limit_offset sqlite mariadb
SELECT id FROM {logstore_standard_log} ORDER BY id DESC LIMIT 10 OFFSET 5
-- @case mysql_limit_comma sqlite mariadb
SELECT id FROM {logstore_standard_log} ORDER BY id LIMIT 5, 10
-- @case if_ifnull_coalesce sqlite mariadb
SELECT id, IF(suspended = 1, 'suspended', 'active') AS state, IFNULL(NULLIF(city, ''), '-') AS city, COALESCE(institution, '') AS inst
FROM {user}
-- @case case_simple sqlite mariadb
SELECT id, CASE contextlevel WHEN 10 THEN 'system' WHEN 40 THEN 'category' WHEN 50 THEN 'course' ELSE 'other' END AS level
FROM {context}
-- @case concat_names sqlite mariadb
SELECT CONCAT(u.firstname, ' ', u.lastname) AS name, LOWER(u.email) AS email FROM {user} u
-- @case group_concat sqlite mariadb
SELECT cu.companyid, GROUP_CONCAT(u.username) AS users
FROM {company_users} cu JOIN {user} u ON u.id = cu.userid
GROUP BY cu.companyid
-- @case group_concat_separator mariadb
SELECT e.courseid, GROUP_CONCAT(DISTINCT e.enrol ORDER BY e.enrol SEPARATOR ', ') AS methods
FROM {enrol} e GROUP BY e.courseid
-- @case date_arithmetic_interval sqlite mariadb
SELECT id, DATE_ADD(FROM_UNIXTIME(timecreated), INTERVAL 30 DAY) AS due
FROM {user}
-- @case date_sub_interval sqlite mariadb
SELECT COUNT(*) FROM {logstore_standard_log}
WHERE FROM_UNIXTIME(timecreated) >= DATE_SUB(FROM_UNIXTIME(1767225600), INTERVAL 7 DAY)
-- @case minus_interval sqlite mariadb
SELECT id, FROM_UNIXTIME(timecreated) - INTERVAL 1 HOUR AS earlier FROM {course}
-- @case unix_timestamp_now sqlite mariadb
SELECT COUNT(*) AS recent FROM {user} WHERE lastaccess > UNIX_TIMESTAMP() - 86400 * 30
-- @case year_month_parts sqlite mariadb
SELECT YEAR(FROM_UNIXTIME(timecreated)) AS y, MONTH(FROM_UNIXTIME(timecreated)) AS m, COUNT(*) AS n
FROM {logstore_standard_log}
GROUP BY YEAR(FROM_UNIXTIME(timecreated)), MONTH(FROM_UNIXTIME(timecreated))
-- @case hour_of_day sqlite mariadb
SELECT HOUR(FROM_UNIXTIME(timecreated)) AS h, COUNT(*) FROM {logstore_standard_log} GROUP BY h
-- @case dayofweek sqlite mariadb
SELECT DAYOFWEEK(FROM_UNIXTIME(timecreated)) AS dow, COUNT(*) FROM {logstore_standard_log} GROUP BY dow
-- @case extract_year sqlite mariadb
SELECT EXTRACT(YEAR FROM FROM_UNIXTIME(timecreated)) AS y FROM {course}
-- @case timestampdiff_days sqlite mariadb
SELECT userid, TIMESTAMPDIFF(DAY, FROM_UNIXTIME(timestarted), FROM_UNIXTIME(timecompleted)) AS days_taken
FROM {course_completions} WHERE timecompleted > 0 AND timestarted > 0
-- @case from_unixtime_format sqlite mariadb
SELECT FROM_UNIXTIME(timecreated, '%Y-%m-%d') AS day FROM {course}
-- @case datediff sqlite mariadb
SELECT DATEDIFF(FROM_UNIXTIME(timecompleted), FROM_UNIXTIME(timeenrolled)) FROM {course_completions}
-- @case between_and_in sqlite mariadb
SELECT id FROM {context} WHERE contextlevel IN (40, 50, 70) AND depth BETWEEN 2 AND 4
-- @case like_escape sqlite mariadb
SELECT id FROM {course} WHERE shortname LIKE 'C!_%' ESCAPE '!'
-- @case not_like_is_null sqlite mariadb
SELECT id FROM {user} WHERE email NOT LIKE '%@example.org' AND idnumber IS NOT NULL
-- @case cast_and_arith sqlite mariadb
SELECT id, CAST(grademax AS SIGNED) AS maxi, grademax / 2 AS half, -grademin AS neg, id % 3 AS bucket
FROM {grade_items}
-- @case round_floor_avg sqlite mariadb
SELECT gi.courseid, ROUND(AVG(gg.finalgrade), 2) AS avg_grade, FLOOR(MAX(gg.finalgrade)) AS best, MIN(gg.finalgrade) AS worst
FROM {grade_grades} gg JOIN {grade_items} gi ON gi.id = gg.itemid
GROUP BY gi.courseid
-- @case scorm_tracks sqlite mariadb
SELECT s.name, sa.userid, se.element, sv.value
FROM {scorm} s
JOIN {scorm_attempt} sa ON sa.scormid = s.id
JOIN {scorm_scoes_value} sv ON sv.attemptid = sa.id
JOIN {scorm_element} se ON se.id = sv.elementid
WHERE se.element = 'cmi.core.lesson_status'
-- @case module_completion sqlite mariadb
SELECT m.name AS module, COUNT(cmc.id) AS completions
FROM {course_modules_completion} cmc
JOIN {course_modules} cm ON cm.id = cmc.coursemoduleid
JOIN {modules} m ON m.id = cm.module
WHERE cmc.completionstate > 0
GROUP BY m.name
-- @case licences sqlite mariadb
SELECT cl.name, cl.allocation, cl.used, COUNT(clu.id) AS allocated
FROM {companylicense} cl
LEFT JOIN {companylicense_users} clu ON clu.licenseid = cl.id
GROUP BY cl.id, cl.name, cl.allocation, cl.used
-- @case company_courses sqlite mariadb
SELECT co.name AS company, c.fullname
FROM {company} co
JOIN {company_course} cc ON cc.companyid = co.id
JOIN {course} c ON c.id = cc.courseid
-- @case roles_in_course_context sqlite mariadb
SELECT c.shortname, r.shortname AS role, COUNT(*) AS people
FROM {role_assignments} ra
JOIN {role} r ON r.id = ra.roleid
JOIN {context} ctx ON ctx.id = ra.contextid AND ctx.contextlevel = 50
JOIN {course} c ON c.id = ctx.instanceid
GROUP BY c.shortname, r.shortname
-- @case user_star_is_not_needed sqlite mariadb
SELECT u.id, u.username, u.firstname, u.lastname FROM {user} u WHERE u.username <> 'guest'
-- @case course_star sqlite mariadb
SELECT * FROM {course} WHERE id > 1
-- @case qualified_star_other_table sqlite mariadb
SELECT c.*, u.username FROM {course} c CROSS JOIN {user} u WHERE u.id = 2
-- @case comments_everywhere sqlite mariadb
-- which courses
SELECT c.id, /* the name */ c.fullname # MySQL comment
FROM {course} c -- a comment
WHERE c.id > 1 /* done */
-- @case optimizer_hint_dropped sqlite mariadb
SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM {course}
-- @case lowercase_keywords sqlite mariadb
select c.id, count(*) as n from {course} c join {course_modules} cm on cm.course = c.id group by c.id
-- @case left_right_substring sqlite mariadb
SELECT LEFT(username, 3), RIGHT(username, 2), SUBSTRING(username, 2, 3), LENGTH(username), UPPER(username), TRIM(username), REPLACE(username, 'a', 'b') FROM {user}
-- @case distinct_count sqlite mariadb
SELECT COUNT(DISTINCT userid) AS active FROM {logstore_standard_log} WHERE crud = 'r'
-- @case self_join_categories sqlite mariadb
SELECT child.name, parent.name AS parent_name
FROM {course_categories} child
LEFT JOIN {course_categories} parent ON parent.id = child.parent
-- @case join_using sqlite mariadb
SELECT e.enrol, COUNT(*) FROM {enrol} e JOIN {course} c ON c.id = e.courseid GROUP BY e.enrol
-- @case iomad_track sqlite mariadb
SELECT t.coursename, COUNT(*) AS completions, AVG(t.finalscore) AS score
FROM {local_iomad_track} t WHERE t.timecompleted IS NOT NULL GROUP BY t.coursename
-- @case greatest_least sqlite mariadb
SELECT id, GREATEST(timecreated, timemodified) AS latest, LEAST(timecreated, timemodified) AS earliest FROM {course}
-- @case cohort_members sqlite mariadb
SELECT ch.name, COUNT(cm.id) FROM {cohort} ch LEFT JOIN {cohort_members} cm ON cm.cohortid = ch.id GROUP BY ch.name
-- @case profile_fields sqlite mariadb
SELECT f.shortname, d.data, d.userid FROM {user_info_data} d JOIN {user_info_field} f ON f.id = d.fieldid
-- @case group_members sqlite mariadb
SELECT g.name, COUNT(gm.userid) FROM {groups} g LEFT JOIN {groups_members} gm ON gm.groupid = g.id GROUP BY g.name
-- @case parenthesised_union sqlite mariadb
SELECT id FROM (SELECT id FROM {course} UNION SELECT id FROM {user}) ids ORDER BY id
-- @case order_by_case_nulls sqlite mariadb
SELECT id, lastaccess FROM {user} ORDER BY CASE WHEN lastaccess = 0 THEN 1 ELSE 0 END, lastaccess DESC
-- @case hex_and_bool_literals sqlite mariadb
SELECT id FROM {course} WHERE visible = TRUE AND id <> 0x10 AND id IS NOT NULL
-- @case lpad_mariadb_only mariadb
SELECT LPAD(id, 6, '0') AS padded, CONCAT_WS('-', shortname, idnumber) FROM {course}
-- @case multiline_tabs sqlite mariadb
SELECT	id,
		fullname
FROM	{course}
WHERE	id	>	1
