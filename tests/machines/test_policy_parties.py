"""Issue 16 §2: each step's papers and duties reach every party the policy names at that step, under
every shipped policy; the addressees are the ones the seeds name (基教股, 公安机关/派出所, 教育中心)."""
from __future__ import annotations

import pytest

from documents import catalog
from documents.addressing import outside_roles, party_names
from machines.states import CaseState
from store.policy_files import SHIPPED_POLICIES, read_policy_file

POLICIES = sorted(p.stem for p in SHIPPED_POLICIES.glob("*.toml"))


def _policy(name):
    return read_policy_file(SHIPPED_POLICIES / f"{name}.toml")[0]


def _issuers(policy, kind_id: str) -> set[str]:
    """The roles that make a paper: the school role the catalog names, the township (and its judicial
    office for the legal notice) for the township's papers."""
    kind = catalog.get(kind_id)
    out = {kind.role}
    if kind.issuer == "township":
        out |= {"township", "township_head"}
    if kind_id == "legal_notice":
        out.add("judicial_office")
    return out & set(policy.roles)


def reached_at(policy, step) -> dict[str, set[str]]:
    """role → how the step reaches it ("duty", "paper:<kind>")."""
    how: dict[str, set[str]] = {}
    kinds = list(step.documents)
    for duty in step.duties:
        how.setdefault(duty.role, set()).add(f"duty:{duty.action.value}")
        kinds += policy.action_documents(duty.action)
    for kind in kinds:
        for role in policy.notices.parties(kind) | _issuers(policy, kind):
            how.setdefault(role, set()).add(f"paper:{kind}")
    return how


@pytest.mark.parametrize("name", POLICIES)
def test_every_party_a_step_names_gets_a_paper_or_a_duty(name):
    policy = _policy(name)
    missing = []
    for step in policy.steps:
        how = reached_at(policy, step)
        missing += [f"{step.state.value}: {policy.role_label(r)}（{r}）" for r in step.roles if r not in how]
    assert not missing, f"{name}: parties named at a step but sent nothing and owing nothing: {missing}"


@pytest.mark.parametrize("name", POLICIES)
def test_a_paper_issued_on_leaving_the_school_goes_to_every_body_the_rule_notifies(name):
    policy = _policy(name)
    for rule in policy.outside:
        for kind in rule.documents:
            parties = policy.notices.parties(kind) | set(outside_roles(policy, kind, rule.reason.value))
            assert set(rule.notify) <= parties, (name, rule.reason.value, kind)


@pytest.mark.parametrize("name", POLICIES)
def test_every_party_is_a_declared_role_and_every_handoff_goes_to_an_addressee(name):
    policy = _policy(name)
    for kind, bodies in policy.handoffs.recipients.items():
        if catalog.get(kind).subject != "case" or not any(kind in s.documents for s in policy.steps):
            continue
        assert set(bodies) <= policy.notices.parties(kind) | _issuers(policy, kind), (name, kind, bodies)


FACTS = {"county": {"name": "宁安县"}, "township": {"name": "城关镇", "short": "城关"}, "village": {"name": "柳树村"},
         "school": {"name": "城关镇中心小学"}}


def test_the_seeds_addressees_are_printed():
    default, wutaishan, jingbian = _policy("default"), _policy("wutaishan"), _policy("jingbian")
    # seed 002 (二).4: 报教育局基教股
    assert party_names(default, default.notices.addressees["report_to_bureau"], FACTS) == ["宁安县教育局基础教育股"]
    # seed 000 §二.5: 去向不明 → 镇政府和当地公安机关
    for policy in (default, wutaishan, jingbian):
        rule = next(r for r in policy.outside if r.reason.value == "whereabouts_unknown")
        names = party_names(policy, list(policy.notices.addressees.get("report_to_township", []))
                            + outside_roles(policy, "report_to_township", "whereabouts_unknown"), FACTS)
        if "report_to_township" in rule.documents:
            assert "城关派出所" in names, (policy.name, names)
    # seed 000 §二.5, §三.3: the list and the report go to the 教育中心
    assert "五台山教育管理中心" in party_names(wutaishan, wutaishan.notices.addressees["dropout_report_form"], FACTS)
    assert party_names(wutaishan, wutaishan.notices.addressees["report_to_bureau"], FACTS) == ["五台山教育管理中心"]
    assert "五台山教育管理中心" in party_names(wutaishan, wutaishan.notices.cc["return_notice"], FACTS)
    # seed 002 (一).10: 通知学生所在村村委会及主管镇长
    assert party_names(jingbian, jingbian.notices.addressees["report_to_township"], FACTS) == [
        "城关镇人民政府主管镇长", "柳树村民委员会"]
    step = wutaishan.step(CaseState.township_notice)
    assert "education_center" in step.roles and "dropout_report_form" in step.documents
