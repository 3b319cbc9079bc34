"""``arb report``: a session (or a date range of them) from the journal, as one self-contained HTML file."""

# Annotations stay evaluated here, as in arb.cli (typer reads them on every start).

from pathlib import Path
from typing import Annotated, Optional

import typer

from arb.cli_journal import ConfigOpt, PathOpt, _guarded, _journal_file


@_guarded
def report(
    config: ConfigOpt = None,
    path: PathOpt = None,
    session: Annotated[Optional[str], typer.Option("--session", help="This session id (`arb journal sessions`). "
                                                   "Default: the latest session.", show_default=False)] = None,
    day_from: Annotated[Optional[str], typer.Option("--from", metavar="YYYY-MM-DD",
                                                    help="Sessions started on or after this UTC day.",
                                                    show_default=False)] = None,
    day_to: Annotated[Optional[str], typer.Option("--to", metavar="YYYY-MM-DD",
                                                  help="Sessions started on or before this UTC day.",
                                                  show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one HTML file that opens offline: premium per pair with entries and exits, cumulative PnL,
    guard blocks by rule, order latency, the summary table."""
    from arb.cli import _fail
    from arb.report import ReportError, Scope, parse_day, write_report

    try:
        scope = Scope(session, parse_day(day_from) if day_from else None, parse_day(day_to) if day_to else None)
        data = write_report(_journal_file(config, path), scope, out)
    except ReportError as exc:
        raise _fail(str(exc)) from None
    trades = len(data.trades)
    sessions = ", ".join(s["id"] for s in data.sessions[:5]) + (" …" if len(data.sessions) > 5 else "")
    typer.echo(f"wrote {out}: {len(data.sessions)} session(s) ({sessions}), {trades} trade(s)"
               + (f"; no premium samples journaled for {len(data.unsampled)} session(s): their premium chart "
                  "shows the premiums at plans and trades" if data.unsampled else ""))
