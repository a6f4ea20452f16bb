"""Auto-unenroll: the policy (`lms_unenroll_policy`), who it would remove and why (the
candidates), and a run that logs `dry_unenroll` events or removes people through a `Remover`
and logs `auto_unenroll`, stopping before anyone is removed when one course would lose more
than the policy's share of its roster.

What "source" means here: the LMS an enrolment comes from, named as the identity map names it
(`canvas`, `moodle`, `blackboard`, configured names). ManiReports reads one LMS, Moodle, so
every enrolment it sees has the source `moodle`; a policy whose sources list leaves `moodle`
out removes no one here.
"""
