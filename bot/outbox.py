"""The outbox of reports not yet delivered; the home of this is `bot.reports.outbox`."""

from bot.reports.outbox import OUTBOX_FILE, Outbox, ReportKey, report_key

__all__ = ["OUTBOX_FILE", "Outbox", "ReportKey", "report_key"]
