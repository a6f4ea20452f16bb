"""At-risk scores for crafted learners, by hand."""

import pytest

from common.analytics.risk_rules import RULE_KINDS, Rule, score
from common.errors import FieldError

RULES = [Rule(RULE_KINDS[name], RULE_KINDS[name].threshold, RULE_KINDS[name].weight)
         for name in RULE_KINDS]  # fmt: skip
HEALTHY = {"min_time_7d_minutes": 120, "max_days_since_login": 1, "min_completion_pct": 80,
           "min_active_days_30d": 10, "max_days_since_course_access": 2}  # fmt: skip


def test_a_learner_breaking_no_rule_scores_zero():
    assert score(RULES, HEALTHY) == (0, [])


def test_points_grow_from_half_to_all_of_the_weight_past_the_threshold():
    # Login 14 days ago against 7: severity 1 -> all 20 points. Completion 40 % against 50:
    # severity 0.2 -> 25 * 0.6 = 15 points. Total weight 100.
    value, factors = score(RULES, {**HEALTHY, "max_days_since_login": 14,
                                   "min_completion_pct": 40})  # fmt: skip
    assert value == 35
    assert [(f["rule"], f["points"]) for f in factors] == [
        ("max_days_since_login", 20.0), ("min_completion_pct", 15.0)
    ]  # fmt: skip


def test_a_learner_who_never_came_scores_near_the_top():
    never = {"min_time_7d_minutes": 0, "max_days_since_login": 9999, "min_completion_pct": 0,
             "min_active_days_30d": 0, "max_days_since_course_access": 9999}  # fmt: skip
    assert score(RULES, never)[0] == 100


def test_disabled_rules_do_not_count_and_weights_rescale():
    rules = [Rule(RULE_KINDS["min_completion_pct"], 50, 25),
             Rule(RULE_KINDS["max_days_since_login"], 7, 0)]  # fmt: skip
    value, factors = score(rules, {**HEALTHY, "min_completion_pct": 0,
                                   "max_days_since_login": 100})  # fmt: skip
    assert value == 100 and [f["rule"] for f in factors] == ["min_completion_pct"]


def test_rule_input_is_checked(appdb):
    from common.analytics.risk_rules import save_rule

    with appdb.transaction() as session:
        with pytest.raises(FieldError) as err:
            save_rule(session, actor_id=2, company_id=None, ruletype="nonsense", threshold=1,
                      weight=1, enabled=True)  # fmt: skip
        assert err.value.field == "ruletype"
        with pytest.raises(FieldError) as err:
            save_rule(session, actor_id=2, company_id=None, ruletype="min_completion_pct",
                      threshold=50, weight=101, enabled=True)  # fmt: skip
        assert err.value.field == "weight"
