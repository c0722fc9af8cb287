#!/usr/bin/env bash
# make install DESTDIR=... PREFIX=/usr puts the expected files in place, the
# installed tool finds the installed library, and make uninstall removes them.
source "$(dirname "$0")/lib.sh"
check() { cond "$@"; }

make -s install DESTDIR="$T" PREFIX=/usr >"$T/log" 2>&1
check "make install DESTDIR=\$tmp PREFIX=/usr succeeds" $?
check "the library is installed as /usr/lib/libportguard.so, mode 0755" \
	"$([ "$(stat -c %a "$T/usr/lib/libportguard.so" 2>/dev/null)" = 755 ]; echo $?)"
check "the tool is installed as /usr/bin/portguard, mode 0755" \
	"$([ "$(stat -c %a "$T/usr/bin/portguard" 2>/dev/null)" = 755 ]; echo $?)"
for m in docs/*.1 docs/*.7; do
	[ -e "$m" ] || continue
	sec=${m##*.}
	check "man page $(basename "$m") installed in share/man/man$sec" \
		"$([ -f "$T/usr/share/man/man$sec/$(basename "$m")" ]; echo $?)"
done
extra=$(cd "$T" && find . -type f | sort | grep -v -e '^./log$' -e '^./usr/lib/libportguard.so$' -e '^./usr/bin/portguard$' -e '^./usr/share/man/man[17]/')
check "nothing else is installed" "$([ -z "$extra" ]; echo $?)"

# The installed tool preloads the installed library (../lib from its bin/).
pre=$(env -u LD_PRELOAD "$T/usr/bin/portguard" run -- sh -c 'echo "$LD_PRELOAD"' 2>/dev/null)
check "the installed portguard run preloads the installed library ($pre)" \
	"$([ "$pre" = "$T/usr/lib/libportguard.so" ]; echo $?)"
out=$("$T/usr/bin/portguard" run --json -o "$T/r" -- build/examples/leaky_client 2>/dev/null)
check "a program run by the installed tool is reported on" \
	"$(cat "$T"/r.* 2>/dev/null | grep -q '"leaked": 2'; echo $?)"

make -s uninstall DESTDIR="$T" PREFIX=/usr >>"$T/log" 2>&1
check "make uninstall succeeds" $?
rm -f "$T"/r.*
left=$(cd "$T" && find . -type f | grep -v '^./log$')
check "make uninstall removes every installed file" "$([ -z "$left" ]; echo $?)"
