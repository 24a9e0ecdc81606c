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
