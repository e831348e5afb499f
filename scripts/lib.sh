# Shared by scripts/run and scripts/test: install missing Debian packages.
# Sourced, not executed.

BUILD_PKGS=(meson ninja-build pkg-config gcc libc6-dev libinih-dev libc-ares-dev libjansson-dev
	libmicrohttpd-dev zlib1g-dev)
TEST_PKGS=(libcriterion-dev python3 iproute2 nftables socat netcat-openbsd
	iputils-ping procps systemd systemd-container tcpdump strace
	clang libclang-rt-14-dev dnsmasq-base valgrind man-db groff-base
	tshark prometheus libxml2-utils chromium tmux)

# What scripts/package needs besides the build dependencies in debian/control
# (which it installs with mk-build-deps from equivs).
PACKAGE_PKGS=(dpkg-dev debhelper devscripts equivs fakeroot lintian)

# What the benchmarks compare against, and capture with (bench/ only).
BENCH_PKGS=(xinetd socat fping oping tcpdump nftables iproute2 util-linux prometheus-smokeping-prober)

# Print the packages from "$@" that are not installed.
missing_pkgs() {
	local p status
	for p in "$@"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $status == ii* ]] || printf '%s\n' "$p"
	done
}

# Install what is missing; does nothing (and needs no network) when all is there.
ensure_pkgs() {
	local missing
	mapfile -t missing < <(missing_pkgs "$@")
	((${#missing[@]} == 0)) && return 0
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; return 1; }
		sudo=(sudo)
	fi
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" >/dev/null
}

# meson setup DIR [OPTIONS...] once; later runs just rebuild.
configure() {
	local dir=$1
	shift
	if [[ ! -f $dir/build.ninja ]]; then
		meson setup "$dir" "$@" >/dev/null
	fi
}
