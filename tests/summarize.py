#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test cases across meson's test log, gtest JSON reports and the fuzz/package checks.

CI reads only the last line, "N passed, N failed[, N skipped]". A gtest binary counts its
cases; a binary that failed without a report (crash, timeout) counts as one failure, so a
crash can never hide behind the cases that ran before it.
"""
import json
import os
import re
import sys


def gtest_counts(path):
    with open(path) as f:
        report = json.load(f)
    passed = failed = skipped = 0
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            if case.get("failures"):
                failed += 1
            elif case.get("result") == "SKIPPED" or case.get("status") == "NOTRUN":
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main(testlog, gtest_dir, checks_log):
    passed = failed = skipped = 0
    if os.path.exists(testlog):
        with open(testlog) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    else:
        entries = []
        failed += 1
        print(f"summarize: no meson test log at {testlog}")
    for entry in entries:
        result = entry.get("result")
        report = os.path.join(gtest_dir, os.path.basename(entry["command"][0]) + ".json")
        if os.path.exists(report):
            p, f, s = gtest_counts(report)
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
                f = 1  # died after its last report line, or timed out
                print(f"summarize: {entry['name']} ended {result} with no failing case")
            passed, failed, skipped = passed + p, failed + f, skipped + s
        elif result == "OK":
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
            print(f"summarize: {entry['name']} ended {result}")
    # Checks outside meson (fuzzing, packaging) print "<area>: <name> ok" or "... FAILED ...".
    if os.path.exists(checks_log):
        with open(checks_log) as f:
            for line in f:
                match = re.match(r"(fuzz|package): \S+ (ok|FAILED)", line)
                if match:
                    if match.group(2) == "ok":
                        passed += 1
                    else:
                        failed += 1
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
