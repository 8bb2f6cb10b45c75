# make_scratch_site DIR : a copy of appliances/static-website outside the workspace, its
# Cargo.toml pointing at this checkout's crates (as tests/tests/direct_unix.rs does), with
# bench files added (the binary is named static-website-<basename DIR>, so that scratch copies
# sharing one target dir never overwrite each other's output), to htdocs: small.html (600 B), 100k.bin (100 KB), 1m.bin (1 MiB).
# Sourced after lib/common.sh.
make_scratch_site() {
  local dir=$1 src=$BENCH_ROOT/appliances/static-website
  mkdir -p "$dir"
  rm -rf "$dir/src" "$dir/htdocs"
  cp -r "$src/src" "$src/htdocs" "$src/build.rs" "$src/redirects" "$dir/"
  [ -f "$dir/appliance.ron" ] && cmp -s "$src/appliance.ron" "$dir/appliance.ron.orig" 2>/dev/null || {
    cp "$src/appliance.ron" "$dir/appliance.ron"; cp "$src/appliance.ron" "$dir/appliance.ron.orig"; }
  printf '%0599d\n' 0 > "$dir/htdocs/small.html"
  head -c 100000 /dev/zero | tr '\0' 'a' > "$dir/htdocs/100k.bin"
  head -c 1048576 /dev/zero | tr '\0' 'b' > "$dir/htdocs/1m.bin"
  scratch_manifest "$src" "$dir" "static-website-$(basename "$dir")"
}

# scratch_manifest SRC DIR BIN : DIR/Cargo.toml, SRC's (an appliance of this checkout) with
# its workspace dependencies pointed at this checkout, its binary named BIN, the
# workspace's profiles and a [workspace] of its own.
scratch_manifest() {
  local src=$1 dir=$2 bin=$3
  local root=$BENCH_ROOT deps=()
  # Every workspace path dependency (`name = { path = "dir" }` in the root Cargo.toml),
  # pointed at this checkout.
  while read -r name path; do
    deps+=(-e "s|^$name.workspace = true|$name = { path = \"$root/$path\" }|")
    # ... and `name = { workspace = true, features = [...] }`
    deps+=(-e "s|^$name = { workspace = true,|$name = { path = \"$root/$path\",|")
  done < <(sed -n 's/^\([a-z0-9_-]*\) = { path = "\([^"]*\)" }$/\1 \2/p' "$root/Cargo.toml")
  sed -e 's/version.workspace = true/version = "0.1.0"/' \
      -e 's/edition.workspace = true/edition = "2024"/' \
      -e '/license.workspace = true/d' \
      "${deps[@]}" \
      -e "/^\[\[bin\]\]/,/^name/ s|^name = \"$(basename "$src")\"|name = \"$bin\"|" \
      "$src/Cargo.toml" > "$dir/Cargo.toml"
  if grep -q 'workspace = true' "$dir/Cargo.toml"; then
    echo "bench: unknown workspace dependency in $src/Cargo.toml" >&2; return 1
  fi
  # The workspace's release profile (see /Cargo.toml), repeated for a standalone package.
  sed -n '/^\[profile/,$p' "$root/Cargo.toml" > "$dir/.profiles"
  printf '\n[workspace]\n\n' >> "$dir/Cargo.toml"
  cat "$dir/.profiles" >> "$dir/Cargo.toml"
}
