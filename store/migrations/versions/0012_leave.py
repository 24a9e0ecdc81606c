"""leave: 请假/免学/转学 requests with their approver, per-lesson absences, 放学未回家 reports.

Revision ID: 0012_leave
Revises: 0011_queues
Create Date: 2026-12-02

A database made by the baseline since these tables joined the models already has them (0001 creates
the models' schema): nothing to do.
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_leave"
down_revision: str | Sequence[str] | None = "0011_queues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "leave_requests" not in tables:
        op.create_table(
            "leave_requests",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("role", sa.String(32), nullable=False),
            sa.Column("status", sa.String(12), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("done_at", sa.DateTime(), nullable=True),
            sa.Column("owner_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
            sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupils.id"), nullable=False),
            sa.Column("school_id", sa.Integer(), sa.ForeignKey("schools.id"), nullable=False),
            sa.Column("class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("first_day", sa.Date(), nullable=False),
            sa.Column("last_day", sa.Date(), nullable=False),
            sa.Column("days", sa.Integer(), nullable=False),
            sa.Column("source", sa.String(8), nullable=False),
            sa.Column("requested_by", sa.String(64), nullable=False),
            sa.Column("reason", sa.String(255), nullable=False),
            sa.Column("due_at", sa.DateTime(), nullable=False),
            sa.Column("decision", sa.String(12), nullable=False),
            sa.Column("decided_by", sa.String(64), nullable=True),
            sa.Column("decided_at", sa.DateTime(), nullable=True),
            sa.Column("decision_note", sa.String(255), nullable=False),
            sa.Column("counted_at", sa.DateTime(), nullable=True),
            sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
            sa.Column("to_school_id", sa.Integer(), sa.ForeignKey("schools.id"), nullable=True),
            sa.Column("to_school_name", sa.String(64), nullable=True),
            sa.Column("cert_path", sa.String(255), nullable=True),
            sa.Column("cert_sha256", sa.String(64), nullable=True),
            sa.Column("cert_media_type", sa.String(64), nullable=True),
            sa.Column("cert_filename", sa.String(128), nullable=True),
            sa.Column("document_id", sa.Integer(), nullable=True),
        )
        op.create_index("ix_leave_requests_owner_id", "leave_requests", ["owner_id"])
        op.create_index("ix_leave_requests_school_id", "leave_requests", ["school_id"])
        op.create_index("ix_leave_requests_pupil", "leave_requests", ["pupil_id", "first_day"])
        op.create_index("ix_leave_requests_status_due", "leave_requests", ["status", "due_at"])
    if "lesson_absences" not in tables:
        op.create_table(
            "lesson_absences",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupils.id"), nullable=False),
            sa.Column("school_id", sa.Integer(), sa.ForeignKey("schools.id"), nullable=False),
            sa.Column("class_id", sa.Integer(), sa.ForeignKey("classes.id"), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("lesson", sa.Integer(), nullable=False),
            sa.Column("subject", sa.String(32), nullable=False),
            sa.Column("reported_by", sa.String(64), nullable=False),
            sa.Column("reported_at", sa.DateTime(), nullable=False),
            sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
            sa.Column("note", sa.String(255), nullable=False),
            sa.UniqueConstraint("pupil_id", "day", "lesson"),
        )
        op.create_index("ix_lesson_absences_school_id", "lesson_absences", ["school_id"])
    if "after_school_reports" not in tables:
        op.create_table(
            "after_school_reports",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupils.id"), nullable=False),
            sa.Column("school_id", sa.Integer(), sa.ForeignKey("schools.id"), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("reported_at", sa.DateTime(), nullable=False),
            sa.Column("parent_name", sa.String(32), nullable=False),
            sa.Column("parent_phone", sa.String(20), nullable=True),
            sa.Column("note", sa.String(255), nullable=False),
            sa.Column("recorded_by", sa.String(64), nullable=False),
            sa.Column("duty_id", sa.Integer(), nullable=True),
            sa.UniqueConstraint("pupil_id", "day"),
        )
        op.create_index("ix_after_school_reports_pupil_id", "after_school_reports", ["pupil_id"])


def downgrade() -> None:
    op.drop_index("ix_after_school_reports_pupil_id", table_name="after_school_reports")
    op.drop_table("after_school_reports")
    op.drop_index("ix_lesson_absences_school_id", table_name="lesson_absences")
    op.drop_table("lesson_absences")
    for ix in ("ix_leave_requests_status_due", "ix_leave_requests_pupil", "ix_leave_requests_school_id",
               "ix_leave_requests_owner_id"):
        op.drop_index(ix, table_name="leave_requests")
    op.drop_table("leave_requests")
