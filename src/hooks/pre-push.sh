#!/bin/sh
# Managed by cms: `cms hooks uninstall` removes this hook and puts back the one it chains.
#
# Runs the pre-push hook that was here before cms's (kept beside this file as
# pre-push.cms-chained) with the same arguments and stdin, then one `cms check` over what the
# push sends, which refuses pushes that touch cms's protected paths. CMS_HOOK_BIN, if set,
# names the cms to run instead of the one below.
#
# git passes `<remote name> <url>` as arguments and one line per ref on stdin:
# `<local ref> <local sha> <remote ref> <remote sha>`.

remote=$1

# Both the chained hook and this script read all of stdin, so it is kept in a file.
lines=$(mktemp "${TMPDIR:-/tmp}/cms-pre-push.XXXXXX") || exit 1
trap 'rm -f "$lines"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cat >"$lines" || exit 1

chained="$0.cms-chained"
if [ -x "$chained" ]; then
	"$chained" "$@" <"$lines" || exit
fi

set -- check
while read -r local_ref local_sha remote_ref remote_sha || [ -n "$local_ref" ]; do
	# A deletion sends nothing; any sha of zeros (SHA-1 or SHA-256) means "no object".
	case $local_sha in
	*[!0]*) ;;
	*) continue ;;
	esac
	# A tag may point at a tree or a blob: only commits carry changes to check.
	tip=$(git rev-parse --verify --quiet "$local_sha^{commit}" </dev/null) || continue
	base=
	case $remote_sha in
	# The remote's tip may be unknown here (a force push over commits never fetched); then
	# the branch is checked as if it were new.
	*[!0]*) base=$(git rev-parse --verify --quiet "$remote_sha^{commit}" </dev/null) ;;
	esac
	if [ -z "$base" ]; then
		# A new branch: check from the parent of its oldest commit that no branch of this
		# remote has, or from the empty tree when that commit is a root.
		new=$(git rev-list --reverse "$tip" --not --remotes="$remote" </dev/null) || exit 1
		[ -n "$new" ] || continue
		oldest=${new%%[!0-9a-f]*}
		base=$(git rev-parse --verify --quiet "$oldest^" </dev/null) ||
			base=$(git hash-object -t tree /dev/null </dev/null) || exit 1
	fi
	set -- "$@" "$base..$tip"
done <"$lines"
[ $# -gt 1 ] || exit 0

installed=@CMS@
if [ -n "${CMS_HOOK_BIN:-}" ]; then
	cms=$CMS_HOOK_BIN
elif [ -x "$installed" ]; then
	cms=$installed
elif command -v cms >/dev/null 2>&1; then
	cms=cms
else
	# Blocking every push because cms was uninstalled would be worse than not checking.
	echo "cms pre-push hook: cms is neither at $installed nor on PATH; pushing without checking protected paths" >&2
	exit 0
fi

"$cms" "$@"
status=$?
if [ "$status" -ne 0 ]; then
	echo "cms pre-push hook: \`cms check\` exited with $status; push stopped" >&2
	exit 1
fi
