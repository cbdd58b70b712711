#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test cases across meson's test logs, gtest JSON reports and the fuzz/package checks.

usage: summarize.py [--checks FILE] --log TESTLOG GTEST_DIR [--log TESTLOG GTEST_DIR ...]

CI reads only the last line, "N passed, N failed[, N skipped]". A gtest binary counts its
cases; a binary that failed without a report (crash, timeout) counts as one failure, so a
crash can never hide behind the cases that ran before it.

Each TESTLOG is a meson testlog.json with the directory its gtest reports went to; `./run
test` passes three: the suites, the VM suite (a second `meson test --logbase testlog-vm`) and
the suites again from the sanitizer build, whose reports have the same names and so a
directory of their own. A test's gtest report is GTEST_DIR/<name>.json, where
<name> is the binary's file name, except for tests wrapped by tests/vm/run-in-vm
(`run-in-vm [OPTIONS] -- BINARY [ARGS]`): there it is the file name of BINARY, or NAME when
the options carry `--gtest-report NAME` (two runs of one binary, see tests/vm/meson.build).
"""
import argparse
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


def report_name(command):
    if "--" in command[:-1] and os.path.basename(command[0]) == "run-in-vm":
        split = command.index("--")
        options = command[:split]
        if "--gtest-report" in options[:-1]:
            return options[options.index("--gtest-report") + 1]
        return os.path.basename(command[split + 1])
    return os.path.basename(command[0])


def main(logs, checks_log):
    passed = failed = skipped = 0
    entries = []
    for testlog, gtest_dir in logs:
        if os.path.exists(testlog):
            with open(testlog) as f:
                entries += [(json.loads(line), gtest_dir) for line in f if line.strip()]
        else:
            failed += 1
            print(f"summarize: no meson test log at {testlog}")
    for entry, gtest_dir in entries:
        result = entry.get("result")
        report = os.path.join(gtest_dir, report_name(entry["command"]) + ".json")
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
    # Checks outside meson (fuzzing, packaging, the sanitizer build) print "<area>: <name> ok" or "... FAILED ...".
    if checks_log and os.path.exists(checks_log):
        with open(checks_log) as f:
            for line in f:
                match = re.match(r"(fuzz|package|sanitizer): \S+ (ok|FAILED)", line)
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks")
    parser.add_argument("--log", nargs=2, action="append", required=True,
                        metavar=("TESTLOG", "GTEST_DIR"))
    args = parser.parse_args()
    sys.exit(main(args.log, args.checks))
