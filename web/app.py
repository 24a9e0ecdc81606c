"""The Baoxue web app: Chinese pages for schools and offices, and the REST API (OpenAPI at /docs).

``create_app(settings)`` builds everything from settings (no engine at import time)::

    uvicorn web.app:create_app --factory
"""
from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from store.db import Settings, make_engine, session_factory

from web.deps import ApiError, LoginRequired, WebSettings, shanghai_now
from web.services import Deployments, PrefectDeployments

HERE = Path(__file__).resolve().parent
VALIDATION_MESSAGE = "提交的内容有误，请检查后重新提交 (invalid request)"
FIELD_NAMES = {"day": "日期", "school_code": "学校代码", "marks": "晨检名单", "student_no": "学籍号", "status": "出勤状态",
               "event": "操作", "file": "文件", "body": "请求内容", "case_id": "案件编号", "duty_id": "任务编号",
               "census_case_id": "失学案件编号", "handoff_id": "回证编号", "document_id": "文书编号", "filing_id": "报表编号",
               "pupil": "学生编号", "month": "月份"}


def templates_env() -> Environment:
    """One Jinja2 environment: autoescape on, a missing field fails the render (StrictUndefined)."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    from web import shell

    env.filters.update(shell.FILTERS)
    env.globals.update(shell.GLOBALS)
    return env


YOUNG_COLLECTION_EVERY = 20_000  # allocations between young collections (CPython's default: 700)
_settled: list[bool] = []


def settle_heap() -> None:
    """Once per process, when the app starts: the objects alive then (modules, models, templates, ~130 k)
    leave the collector's walks (``gc.freeze``) and a young collection runs every 20 000 allocations, not 700.
    A 5 000-row export allocates ~100 k containers: with CPython's defaults ~35 young, 3 middle and now and
    then a full collection walking the whole heap, ~40 ms of its ~215 ms CPU and most of its worst case
    (docs/performance.md ``## gc``)."""
    if _settled:
        return
    _settled.append(True)
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


def create_app(
    settings: Settings | None = None, *, factory: sessionmaker[Session] | None = None,
    clock: Callable[[], datetime] | None = None, deployments: Deployments | None = None, init: bool = True,
) -> FastAPI:
    """The app. ``factory``/``clock``/``deployments`` default to the settings' database, the
    Asia/Shanghai wall clock and the Prefect server in ``PREFECT_API_URL`` (tests pass their own)."""
    settings = WebSettings(**(settings.model_dump() if settings is not None else {}))
    if settings.morning_check_deployment is None:
        settings.morning_check_deployment = morning_check_deployment()
    engine = None
    if factory is None:
        engine = make_engine(settings.database_url)
        factory = session_factory(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if init and engine is not None:
            from store.bootstrap import init_store

            init_store(engine, now=app.state.clock())
        settle_heap()
        yield
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="保学 Baoxue 控辍保学", version="0.1.0", lifespan=lifespan,
        description="控辍保学一人一案：学校、乡镇、县教育局的接口。错误信息为中文，上传文件的错误逐行列出。"
                    "访问令牌：POST /api/auth/token，然后在请求头加 `Authorization: Bearer <token>`。",
    )
    app.state.settings = settings
    app.state.factory = factory
    app.state.clock = clock or ((lambda: settings.fixed_clock) if settings.fixed_clock else shanghai_now)
    app.state.deployments = deployments or PrefectDeployments(settings.prefect_ui_url)
    app.state.templates = Jinja2Templates(env=templates_env())

    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _error_handlers(app)
    from web.body_limit import BodyLimit  # a body over BAOXUE_REQUEST_MAX_MB: 413 while it streams (issue 14 row 14)

    app.add_middleware(BodyLimit, max_mb=settings.request_max_mb)
    app.add_middleware(SecurityHeaders)  # outermost: a 413 carries the headers too
    return app


# -- security headers on every response (pages, API, documents, attachments, static files) -------
# The pages are plain forms with no script; a document preview carries its stylesheet inline and its
# photos as data: URIs. Attachments (user uploads) get a sandbox on top. /docs and /redoc (OpenAPI)
# load Swagger UI / ReDoc from their CDN with an inline bootstrap script: they alone may.
APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
ATTACHMENT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "same-origin", "cross-origin-opener-policy": "same-origin"}


def content_security_policy(path: str) -> str:
    if path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        return DOCS_CSP
    if path.startswith(("/attachments/", "/api/attachments/")):
        return ATTACHMENT_CSP
    return APP_CSP


class SecurityHeaders:
    """ASGI middleware: CSP, nosniff, frame denial and a referrer policy on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = content_security_policy(scope.get("path", ""))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in SECURITY_HEADERS and k.lower() != b"content-security-policy"]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                headers.append((b"content-security-policy", csp.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def routers() -> list:
    """Every router of the app, in mounting order (the scoping test probes each of their routes)."""
    from web import (
        api, api_leave, api_reports, auth, pages, pages_account, pages_accountability, pages_calendar, pages_census,
        pages_directory, pages_followup, pages_gate, pages_leave, pages_oversight, pages_queues, pages_reports,
    )

    return [auth.router, auth.api_router, api.router, pages.router,
            pages_oversight.router,  # /risk, /reconcile: watch list and reconciliation (issue 8 parts 4–5)
            pages_gate.router,  # /gate, /truancy: boarders' gate log and truancy tiers (parts 2–3)
            pages_census.router,  # /census, /handoffs: out-of-school census and 送达回证 (parts 1, 6)
            pages_account.router, pages_account.api_router,  # /account, /admin/users, /api/auth/tokens (issue 14)
            pages_directory.router, pages_directory.api_router,  # /directory, /api/pupils…, /admin/onboarding (issue 19)
            pages_calendar.router,  # /admin/calendar: term dates, breaks, a year's holiday list (issue 19)
            pages_followup.router,  # /ledger-book: 台账 of referred cases (issue 16)
            pages_accountability.router, pages_accountability.api_router,  # 约谈, 一票否决, ranking, 责任书, 包保 (issue 17)
            pages_reports.router, api_reports.router,  # 报表报送, 周查表, 季查结果 (issue 17 items 1–3)
            pages_queues.router,  # /stuck, /cases, /risk as paged work queues with export (issue 18)
            api_leave.router, pages_leave.router]  # /leave, /api/leave…: leave, transfers, lesson counts (issue 17)


def morning_check_deployment() -> str:
    """The morning-check deployment's full name ("flow/deployment") as deploy/ declares it."""
    from deploy.deployments import spec

    return spec("morning-check").full_name


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, message: str, errors=None) -> HTMLResponse:
    from web.shell import error_page

    return error_page(request, status, message, errors)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        if _wants_json(request):
            return JSONResponse(exc.body(), status_code=exc.status)
        return _error_page(request, exc.status, exc.message, exc.errors)

    from machines.calendar import CalendarYearUnknown

    @app.exception_handler(CalendarYearUnknown)
    async def no_calendar(request: Request, exc: CalendarYearUnknown):  # a date of a year with no 校历, e.g. 0387-01-05
        return await api_error(request, ApiError(422, f"{exc.year} 年的校历未录入，无法处理该日期 "
                                                      f"(no school calendar for {exc.year})"))

    from sqlalchemy.exc import DataError

    @app.exception_handler(DataError)
    async def bad_value(request: Request, exc: DataError):  # PostgreSQL refuses a NUL character, a too-long value…
        return await api_error(request, ApiError(422, "提交的内容含有无法保存的字符（如 \\0）或超出长度，请检查后重新提交 "
                                                      "(value refused by the database)"))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        from web.auth import login_redirect

        return login_redirect(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form")]
            label = "·".join(FIELD_NAMES.get(p, p) for p in loc) or "请求"
            errors.append({"field": ".".join(loc), "message": f"{label}：{_plain(e)}"})
        if _wants_json(request):
            return JSONResponse({"message": VALIDATION_MESSAGE, "errors": errors}, status_code=422)
        return _error_page(request, 422, VALIDATION_MESSAGE, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "页面或资源不存在 (not found)", 405: "不支持此请求方式 (method not allowed)"}.get(
            exc.status_code, str(exc.detail))
        if _wants_json(request):
            return JSONResponse({"message": message}, status_code=exc.status_code)
        return _error_page(request, exc.status_code, message)


def _plain(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "必填 (required)"
    if kind.startswith("date") or kind.startswith("datetime"):
        return "日期格式应为 2026-11-16 (date expected)"
    if kind.startswith("int"):
        return "应为数字 (number expected)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):  # an id past int32, -1
        return "超出范围，该编号不存在 (out of range)"
    return error.get("msg", "无效")
