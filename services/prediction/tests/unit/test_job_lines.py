"""Line numbers of a CSV job's rows when the parser skipped bad lines (pure logic)."""

from __future__ import annotations

import numpy as np

from churn_prediction.batch_jobs.files import csv_lines


def test_without_skipped_lines_row_k_is_on_line_k_plus_2() -> None:
    lines = csv_lines(0, 4, np.empty(0, np.int64))
    assert lines.tolist() == [2, 3, 4, 5]
    assert csv_lines(10, 2, np.empty(0, np.int64)).tolist() == [12, 13]


def test_rows_after_skipped_lines_move_down_past_them() -> None:
    # Lines 1 (header) .. 10; lines 4, 5 and 8 were skipped: the parsed rows are on the rest.
    skipped = np.asarray([4, 5, 8], np.int64)
    expected = [2, 3, 6, 7, 9, 10]
    assert csv_lines(0, 6, skipped).tolist() == expected
    # The same rows split over two chunks.
    assert csv_lines(0, 3, skipped).tolist() + csv_lines(3, 3, skipped).tolist() == expected
