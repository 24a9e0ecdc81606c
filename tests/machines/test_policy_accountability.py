"""The yearly 责任书 is due on a day every year has: a policy naming 30 February is refused when read, in
Chinese and English, instead of crashing the yearly pledge issue later."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from machines.policy_accountability import AccountabilityRules


@pytest.mark.parametrize("month,day", [(2, 29), (2, 30)])
def test_a_pledge_day_that_some_year_lacks_is_refused(month, day):
    with pytest.raises(ValidationError, match="不存在.*does not exist"):
        AccountabilityRules(pledge_due_month=month, pledge_due_day=day)


@pytest.mark.parametrize("month,day", [(2, 28), (4, 30), (9, 30), (12, 30)])
def test_a_pledge_day_every_year_has_is_kept(month, day):
    rules = AccountabilityRules(pledge_due_month=month, pledge_due_day=day)
    assert (rules.pledge_due_month, rules.pledge_due_day) == (month, day)


def test_every_shipped_policy_routes_a_short_leave_to_the_office_and_a_long_one_to_the_principal():
    """seed 002 5: 请假一天以上向教导处报告，三天以上教导处向校长室报告 — each threshold of [leave] reaches a
    role the policy declares (wutaishan names its 教导处, seed 000 二.1), so neither is inert."""
    from store.policy_files import SHIPPED_POLICIES, read_policy_file

    files = sorted(SHIPPED_POLICIES.glob("*.toml"))
    assert [f.stem for f in files] == ["default", "jingbian", "wutaishan"]
    for path in files:
        policy, name = read_policy_file(path)[0], path.stem
        rules = policy.leave
        assert rules.approver(rules.office_over_days, policy.roles) == "academic_office", name
        assert rules.approver(rules.principal_over_days, policy.roles) == "principal", name
