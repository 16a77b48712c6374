"""The slow query of the tests of quick queries that go on as jobs (issue 18, point 1): several times their small
quick time limit on any machine (CI ran 20,000 x 3,000 pairs in 0.35 s), its rows known."""

from __future__ import annotations

import re

LIMIT = 0.5  # seconds: the quick time limit of these tests
# Two rows' worth of work over 20,000 x 20,000 pairs of the demo table.
PAIRS = ("FROM PhotoObj a, (SELECT ra FROM PhotoObj ORDER BY objid LIMIT 20000) b WHERE a.ra + b.ra < 360 "
         "GROUP BY k ORDER BY k")  # fmt: skip
SAME = f"SELECT a.objid % 2 AS k, count(*) AS n {PAIRS}"  # in the native API's SQL
CONFIG = {"quick_time_limit": LIMIT, "job_workers": 2, "jobs_per_user": 1}
NAMED = re.compile(r"job (\d+): (\S+)")  # a job named by a face's time-limit error, and its URL
