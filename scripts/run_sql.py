#!/usr/bin/env python3
"""Run the statements of SQL files against a ClickHouse HTTP endpoint, one request each.

    run_sql.py --url http://127.0.0.1:18123 [--user U] [--replace KEY=VALUE ...] FILE...

ClickHouse's HTTP interface takes one statement per request, so each file is split on `;`
(outside quotes and comments). `--replace '{prefix}=chdbcheck'` substitutes text first.
Stops at the first failing statement and exits 1, naming the file and the statement.
Standard library only, so it also runs outside the venv.
"""

import argparse
import sys
import urllib.error
import urllib.request


def split_statements(sql):
    """Split SQL text on top-level `;`, skipping quoted strings, identifiers and comments.

    Returns the statements with surrounding whitespace removed; comment-only pieces are dropped.
    """
    statements, start, i, n = [], 0, 0, len(sql)
    has_code = False  # whether the current piece holds anything but whitespace and comments
    while i < n:
        c = sql[i]
        if c in "'\"`":
            # Quoted string or identifier: backslash escapes and doubled quotes both occur.
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i, has_code = j + 1, True
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start, i, has_code = i + 1, i + 1, False
        else:
            has_code = has_code or not c.isspace()
            i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def run(url, user, statement):
    """POST one statement; return None on success or the server's error text."""
    req = urllib.request.Request(url, data=statement.encode(), method="POST")
    req.add_header("X-ClickHouse-User", user)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
        return None
    except urllib.error.HTTPError as e:
        return e.read().decode(errors="replace").strip() or str(e)
    except OSError as e:
        return f"request failed: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="ClickHouse HTTP endpoint")
    ap.add_argument("--user", default="default")
    ap.add_argument("--replace", action="append", default=[], metavar="KEY=VALUE",
                    help="replace KEY with VALUE in the SQL text (repeatable)")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()

    replacements = [r.split("=", 1) for r in args.replace]
    count = 0
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for key, value in replacements:
            text = text.replace(key, value)
        for statement in split_statements(text):
            error = run(args.url, args.user, statement)
            if error is not None:
                print(f"{path}: statement failed:\n{statement}\n--> {error}", file=sys.stderr)
                return 1
            count += 1
    print(f"{count} statements from {len(args.files)} files ran", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
