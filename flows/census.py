"""排查 (out-of-school census, seed 000 §二.1): what follows the import of a village's register.

One run per imported file, never per child:

1. children now on the roster close their census case (已入学);
2. every child of compulsory-school age enrolled nowhere and not exempted opens a 失学 case,
   with the village's and the school's persuasion duties;
3. the township's 入学通知书 is issued for each new case;
4. the notices handed to the village committees get their receipts (送达回证) to acknowledge.
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from tasks.census import census_step, census_summary, verify_import
from tasks.runtime import resolve_as_of, run_name


@flow(name="census_import", log_prints=False, flow_run_name=run_name("census"))
def census_import(import_id: int, as_of: datetime | None = None) -> dict:
    logger = get_run_logger()
    as_of = resolve_as_of(as_of)
    verify_import(import_id, as_of)  # a run started through the Prefect API names a real import, in its time
    step = census_step(import_id, as_of)  # the procedure (documents.census.census_step), as one task
    summary = census_summary(import_id)
    logger.info("census import %s: %s rows, opened %s, closed %s, notices %s, hand-offs %s", import_id,
                summary.get("rows"), step["opened"], step["closed"], step["documents"], step["handoffs"])
    return {"import_id": import_id, **step, "summary": summary}
