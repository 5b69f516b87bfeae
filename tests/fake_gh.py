"""A stand-in for the GitHub CLI (`gh`) that records every call and keeps the state a workflow
can observe: pull requests, issues and comments, in one JSON file.

Only the calls the workflows and `.github/scripts/` make are understood; anything else exits 1
with "fake gh: unsupported ...", so a new `gh` call in a script fails its simulation instead of
passing unnoticed. `--jq` filters go through the real `jq`, as `gh` applies them.

Usage (the harness writes a `gh` shim that runs this file):
    python fake_gh.py STATE_FILE ARGS...
State: {"calls": [...], "prs": [...], "issues": [...], "comments": [...], "next": 1}.
A call that needs a token (GH_TOKEN) without one fails as `gh` does; a token named
"read-only" (a fork's GITHUB_TOKEN) cannot write.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class RefusedError(Exception):
    pass


def _take(args: list[str], flag: str, default: str | None = None) -> str | None:
    """Remove `flag VALUE` (or `flag=VALUE`) from args; returns VALUE."""
    for i, arg in enumerate(args):
        if arg == flag:
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if arg.startswith(flag + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return default


def _flag(args: list[str], flag: str) -> bool:
    if flag in args:
        args.remove(flag)
        return True
    return False


def _body(args: list[str]) -> str | None:
    body = _take(args, "--body")
    path = _take(args, "--body-file") or _take(args, "-F")
    if path is not None:
        if path.startswith("body=@"):
            path = path[len("body=@") :]
        body = Path(path).read_text()
    return body


def _out(data: Any, jq: str | None) -> str:
    text = json.dumps(data)
    if jq is None:
        return text + "\n"
    proc = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RefusedError(f"jq {jq!r} failed: {proc.stderr}")
    return proc.stdout


def _write(state: dict[str, Any]) -> None:
    if os.environ.get("GH_TOKEN", "") == "":
        raise RefusedError(
            "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN "
            "environment variable"
        )
    if os.environ.get("GH_TOKEN") == "read-only":
        raise RefusedError("HTTP 403: Resource not accessible by integration")


def _fields(obj: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    if wanted is None:
        return obj
    return {k: obj.get(k) for k in wanted.split(",")}


def run(state: dict[str, Any], argv: list[str]) -> str:
    args = list(argv)
    if os.environ.get("GH_REPO", "") == "":
        raise RefusedError("fake gh: GH_REPO is not set (every call names the repository)")
    group = args.pop(0) if args else ""
    action = args.pop(0) if args else ""
    jq = _take(args, "--jq") or _take(args, "-q")
    if group == "pr" and action == "list":
        head = _take(args, "--head")
        wanted_state = (_take(args, "--state") or "open").upper()
        fields = _take(args, "--json")
        _take(args, "--limit")
        _take(args, "--base")
        found = [
            _fields(pr, fields)
            for pr in state["prs"]
            if (head is None or pr["headRefName"] == head)
            and (wanted_state == "ALL" or pr["state"] == wanted_state)
        ]
        _none_left(args)
        return _out(found, jq)
    if group == "pr" and action == "create":
        _write(state)
        head = _take(args, "--head")
        title = _take(args, "--title")
        base = _take(args, "--base") or "main"
        body = _body(args)
        _take(args, "--label")
        _none_left(args)
        if head is None or title is None or body is None:
            raise RefusedError("fake gh: pr create needs --head, --title and --body/--body-file")
        for pr in state["prs"]:
            if pr["headRefName"] == head and pr["state"] == "OPEN":
                raise RefusedError(
                    f'a pull request for branch "{head}" into branch "{base}" already exists:\n'
                    f"https://github.com/{os.environ['GH_REPO']}/pull/{pr['number']}"
                )
        number = state["next"]
        state["next"] += 1
        url = f"https://github.com/{os.environ['GH_REPO']}/pull/{number}"
        state["prs"].append(
            {
                "number": number,
                "url": url,
                "headRefName": head,
                "baseRefName": base,
                "title": title,
                "body": body,
                "state": "OPEN",
                "edits": 0,
            }
        )
        return url + "\n"
    if group == "pr" and action == "edit":
        _write(state)
        ref = args.pop(0)
        title = _take(args, "--title")
        body = _body(args)
        _none_left(args)
        pr = _find(state["prs"], ref, "headRefName")
        if title is not None:
            pr["title"] = title
        if body is not None:
            pr["body"] = body
        pr["edits"] += 1
        return pr["url"] + "\n"
    if group == "issue" and action == "list":
        wanted_state = (_take(args, "--state") or "open").upper()
        fields = _take(args, "--json")
        _take(args, "--limit")
        search = _take(args, "--search")
        _none_left(args)
        found = [
            _fields(i, fields)
            for i in state["issues"]
            if (wanted_state == "ALL" or i["state"] == wanted_state)
            and (search is None or search.strip('"') in i["title"] + i["body"])
        ]
        return _out(found, jq)
    if group == "issue" and action == "create":
        _write(state)
        title = _take(args, "--title")
        body = _body(args)
        _take(args, "--label")
        _none_left(args)
        if title is None or body is None:
            raise RefusedError("fake gh: issue create needs --title and --body/--body-file")
        number = state["next"]
        state["next"] += 1
        url = f"https://github.com/{os.environ['GH_REPO']}/issues/{number}"
        state["issues"].append(
            {"number": number, "url": url, "title": title, "body": body, "state": "OPEN"}
        )
        return url + "\n"
    if group == "api":
        args.insert(0, action)
        method = (_take(args, "--method") or _take(args, "-X") or "GET").upper()
        _flag(args, "--paginate")
        body = _body(args)
        path = args.pop(0)
        _none_left(args)
        return _api(state, method, path, body, jq)
    raise RefusedError(f"fake gh: unsupported call: gh {' '.join(argv)}")


def _find(items: list[dict[str, Any]], ref: str, name_key: str) -> dict[str, Any]:
    for item in items:
        if str(item["number"]) == ref or item.get(name_key) == ref or item["url"] == ref:
            return item
    raise RefusedError(f"no pull request found for {ref}")


def _api(state: dict[str, Any], method: str, path: str, body: str | None, jq: str | None) -> str:
    parts = path.strip("/").split("/")
    if parts[:1] != ["repos"] or "/".join(parts[1:3]) != os.environ["GH_REPO"]:
        raise RefusedError(f"fake gh: unsupported api path {path}")
    rest = parts[3:]
    if rest[:1] == ["issues"] and len(rest) == 3 and rest[2] == "comments":
        number = int(rest[1])
        if method == "GET":
            found = [c for c in state["comments"] if c["issue"] == number]
            return _out(found, jq)
        if method == "POST":
            _write(state)
            comment = {"id": 1000 + len(state["comments"]), "issue": number, "body": body}
            # written by the token's own login, as GitHub records it
            comment["user"] = {"login": os.environ.get("FAKE_GH_LOGIN", "github-actions[bot]")}
            state["comments"].append(comment)
            return _out(comment, jq)
    if rest[:2] == ["issues", "comments"] and len(rest) == 3 and method == "PATCH":
        _write(state)
        for comment in state["comments"]:
            if comment["id"] == int(rest[2]):
                comment["body"] = body
                comment["edits"] = comment.get("edits", 0) + 1
                return _out(comment, jq)
        raise RefusedError(f"HTTP 404: comment {rest[2]} not found")
    raise RefusedError(f"fake gh: unsupported api call {method} {path}")


def _none_left(args: list[str]) -> None:
    if args:
        raise RefusedError(f"fake gh: unsupported arguments {args}")


def main() -> int:
    state_file, argv = Path(sys.argv[1]), sys.argv[2:]
    with open(state_file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        for key in ("calls", "prs", "issues", "comments"):
            state.setdefault(key, [])
        state.setdefault("next", 1)
        state["calls"].append(argv)
        try:
            out = run(state, argv)
            code = 0
        except RefusedError as exc:
            print(str(exc), file=sys.stderr)
            out, code = "", 1
        state_file.write_text(json.dumps(state, indent=1))
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
