# Shared by tools/ab and tools/cg (sourced, not run): builds one program at
# a base commit and in the working tree.
#
#   build_base_and_tree BASE PROGRAM
#
# PROGRAM is an example (flash_sale) or a bench without the test harness
# (steady_spread); each tree builds it as what it is there, so a base from
# before a program moved between examples/ and benches/ still builds.
# Sets `root` (the repository), `rev` (BASE's full hash) and `work` (a
# temporary folder, removed on exit with the worktree in it) and leaves the
# two builds of PROGRAM in "$work/A" (BASE, built from a temporary worktree
# into target-ab-base/) and "$work/B" (the working tree, built into
# target/). Changes directory to the repository.
build_base_and_tree() {
    local base=$1 program=$2
    root=$(git rev-parse --show-toplevel)
    cd "$root"
    rev=$(git rev-parse --verify "$base^{commit}")
    work=$(mktemp -d)
    trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    git worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
    (cd "$work/src" && build_program "$program" "$root/target-ab-base" "$work/A")
    build_program "$program" "$root/target" "$work/B"
}

# build_program PROGRAM TARGET_DIR OUT: builds PROGRAM of the tree in the
# current directory (release profile; a bench with the bench profile, which
# inherits it) into TARGET_DIR and copies the binary to OUT.
build_program() {
    local program=$1 target=$2 out=$3 exe
    if [ -f "benches/$program.rs" ]; then
        exe=$(CARGO_TARGET_DIR="$target" cargo bench --quiet --no-run --bench "$program" \
            --message-format=json | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
        [ -n "$exe" ] || { echo "no binary for bench $program" >&2; return 1; }
        cp "$exe" "$out"
    else
        CARGO_TARGET_DIR="$target" cargo build --release --quiet --example "$program"
        cp "$target/release/examples/$program" "$out"
    fi
}
