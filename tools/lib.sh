# Shared by tools/ab and tools/cg (sourced, not run): builds one example at
# a base commit and in the working tree.
#
#   build_base_and_tree BASE EXAMPLE
#
# Sets `root` (the repository), `rev` (BASE's full hash) and `work` (a
# temporary folder, removed on exit with the worktree in it) and leaves the
# two builds of EXAMPLE in "$work/A" (BASE, built from a temporary worktree
# into target-ab-base/) and "$work/B" (the working tree, built into
# target/). Changes directory to the repository.
build_base_and_tree() {
    local base=$1 example=$2
    root=$(git rev-parse --show-toplevel)
    cd "$root"
    rev=$(git rev-parse --verify "$base^{commit}")
    work=$(mktemp -d)
    trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    git worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
    (cd "$work/src" && CARGO_TARGET_DIR="$root/target-ab-base" \
        cargo build --release --quiet --example "$example")
    cp "$root/target-ab-base/release/examples/$example" "$work/A"
    cargo build --release --quiet --example "$example"
    cp "$root/target/release/examples/$example" "$work/B"
}
