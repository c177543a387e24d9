#!/bin/sh
# Prints the path of the newest Python >= 3.12 it can find (PATH first, then pyenv), or
# prints one clear line on stderr and exits 1. Used by the Makefile; $PYTHON overrides it.
best=""; best_ver=0
for cand in python3.15 python3.14 python3.13 python3.12 python3 python \
            "$HOME"/.pyenv/versions/3.*/bin/python /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
  path=$(command -v "$cand" 2>/dev/null) || continue
  ver=$("$path" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null) || continue
  if [ "$ver" -ge 312 ] && [ "$ver" -gt "$best_ver" ]; then best="$path"; best_ver="$ver"; fi
done
if [ -z "$best" ]; then
  echo "replay needs Python >= 3.12 and none was found on PATH or under ~/.pyenv (set PYTHON=/path/to/python3.12+)" >&2
  exit 1
fi
echo "$best"
