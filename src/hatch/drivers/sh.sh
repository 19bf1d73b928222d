# egg's POSIX sh driver: one live shell for every sh cell of an egg. The
# protocol is the bash driver's; the code is read with head -c, which may
# read ahead safely because the pipe holds one cell at a time.
while IFS=' ' read -r __egg_cell __egg_length <&3; do
  __egg_code=$(head -c "$__egg_length" <&3; echo x)
  __egg_code=${__egg_code%x}
  eval "$__egg_code"
  __egg_status=$?
  printf '%s %s\n' "$__egg_cell" "$__egg_status" >&4
done
