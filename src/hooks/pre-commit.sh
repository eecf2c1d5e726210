#!/bin/sh
# Managed by cms: `cms hooks uninstall` removes this hook and puts back the one it chains.
#
# Runs the pre-commit hook that was here before cms's (kept beside this file as
# pre-commit.cms-chained), then `cms check --staged`, which refuses commits that touch cms's
# protected paths. CMS_HOOK_BIN, if set, names the cms to run instead of the one below.
#
# git's environment is passed on untouched: `git commit -a` and `git commit <path>` stage into
# a temporary index named by GIT_INDEX_FILE, and that index is the one to check.

chained="$0.cms-chained"
if [ -x "$chained" ]; then
	"$chained" "$@" || exit
fi

installed=@CMS@
if [ -n "${CMS_HOOK_BIN:-}" ]; then
	cms=$CMS_HOOK_BIN
elif [ -x "$installed" ]; then
	cms=$installed
elif command -v cms >/dev/null 2>&1; then
	cms=cms
else
	# Blocking every commit because cms was uninstalled would be worse than not checking.
	echo "cms pre-commit hook: cms is neither at $installed nor on PATH; committing without checking protected paths" >&2
	exit 0
fi

"$cms" check --staged
status=$?
if [ "$status" -ne 0 ]; then
	echo "cms pre-commit hook: \`cms check --staged\` exited with $status; commit stopped" >&2
	exit 1
fi
