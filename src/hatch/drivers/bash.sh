# egg's bash driver: one live shell for every bash cell of an egg. It reads
# cells from fd 3 as "<cell> <length>\n" followed by the code, evals each in
# this shell (variables and functions persist), and writes
# "<cell> <status>\n" on fd 4. Status is the cell's last exit status.
# Cells must not contain NUL bytes (the hatcher refuses them): bash cannot
# hold them in a variable.
while IFS=' ' read -r __egg_cell __egg_length <&3; do
  __egg_code=
  if [ "$__egg_length" -gt 0 ]; then
    # In the C locale -N counts bytes; the pipe holds this one cell only.
    LC_ALL=C IFS= read -r -d '' -N "$__egg_length" __egg_code <&3
  fi
  eval "$__egg_code"
  __egg_status=$?
  printf '%s %s\n' "$__egg_cell" "$__egg_status" >&4
done
