#!/usr/bin/env bash
# Real mail servers for sockmail's tests, closed and loopback-only.
#
#   .ci/servers.sh up       install what is missing, generate state, start all, wait
#   .ci/servers.sh down     stop all
#   .ci/servers.sh status   tell what runs (exit 0 only if everything answers)
#
# State (certificates, configs, queues, Maildirs, logs and the "env" file the
# Go tests read) lives in $SOCKMAIL_TESTSERVERS, default /tmp/sockmail-testservers.
# Needs Debian and root for the first "up" (apt-get). Every step is idempotent:
# a second "up" only checks and returns.
#
# Nothing can leave the machine: Postfix has no smtp/lmtp client services at
# all, its default and relay transports are error:, and DNS is disabled.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${SOCKMAIL_TESTSERVERS:-/tmp/sockmail-testservers}

HOST=127.0.0.1
SMTP_PORT=2525        # Postfix: plain, STARTTLS offered, no AUTH
SMTPS_PORT=2465       # Postfix: implicit TLS, AUTH
SUBMISSION_PORT=2587  # Postfix: STARTTLS required, then AUTH required
AIOSMTPD_PORT=2526    # aiosmtpd: plain, STARTTLS offered, no AUTH
HARAKA_PORT=2625          # Haraka: plain, STARTTLS offered, AUTH after STARTTLS
HARAKA_SMTPS_PORT=2665    # Haraka: implicit TLS, AUTH
MAILPIT_PORT=2725         # Mailpit: plain, STARTTLS offered, AUTH (any credentials) after STARTTLS
MAILPIT_HTTP_PORT=2780    # Mailpit: REST API of the instance above
MAILPIT_TLS_PORT=2765     # Mailpit: implicit TLS, AUTH (any credentials)
MAILPIT_TLS_HTTP_PORT=2781  # Mailpit: REST API of the implicit-TLS instance
INBUCKET_PORT=2825        # Inbucket: plain, STARTTLS offered, no AUTH
INBUCKET_HTTP_PORT=2880   # Inbucket: REST API
INBUCKET_POP3_PORT=2810   # Inbucket: POP3 (unused by the tests, kept on loopback)
INBUCKET_TLS_PORT=2865    # Inbucket: implicit TLS, no AUTH
INBUCKET_TLS_HTTP_PORT=2881 # Inbucket: REST API of the implicit-TLS instance
INBUCKET_TLS_POP3_PORT=2811 # Inbucket: POP3 of the implicit-TLS instance (unused)
KNOT_PORT=2553            # Knot DNS: authoritative for the test zones (UDP and TCP)
UNBOUND_PORT=2554         # Unbound: validating resolver for the test zones (UDP and TCP)
POLICY_GOOD_PORT=2537     # Postfix: STARTTLS with a certificate for mx.policy.test (DANE, MTA-STS)
POLICY_EXPIRED_PORT=2538  # Postfix: STARTTLS with an EXPIRED certificate for mx.policy.test
POLICY_OTHERNAME_PORT=2539  # Postfix: STARTTLS with a certificate for another name (mail.elsewhere.test)
CERT_SOON_PORT=2540       # Postfix: STARTTLS with a certificate for localhost that expires in 4 to 5 days
IMAP_PORT=2143            # Dovecot IMAP: STARTTLS offered, LOGIN (the monitor mailbox)
IMAPS_PORT=2993           # Dovecot IMAP: implicit TLS, LOGIN
MTASTS_PORT=2443          # HTTPS (python3): MTA-STS policies of the policy.test domains
DOMAIN=example.test
TEST_USER=tester@example.test
TEST_PASSWORD=s3cret-Pa55
# The IMAP test mailbox: Postfix delivers mail for this address into its own
# Maildir (not the shared one), which Dovecot serves over IMAP.
IMAP_USER=monitor@example.test
IMAP_PASSWORD=imap-Pa55-monitor
MESSAGE_SIZE_LIMIT=62914560   # 60 MiB
PY=/usr/bin/python3           # Debian's python: has the aiosmtpd module
# Servers installed from their own registries, pinned; "up" skips an install
# when the right version is there.
HARAKA_VERSION=3.3.4          # npm; the exact tree is .ci/haraka/package-lock.json
MAILPIT_MODULE=github.com/axllent/mailpit
MAILPIT_VERSION=v1.33.1
INBUCKET_MODULE=github.com/inbucket/inbucket/v3
INBUCKET_VERSION=v3.2.0
# Not a server: axe-core, the accessibility checker the Chromium tests
# inject into every page (handlers/a11y_browser_test.go).
AXE_VERSION=4.14.1            # npm; the exact tree is .ci/axe/package-lock.json
PACKAGES=(postfix dovecot-core dovecot-imapd python3-aiosmtpd python3-dkim python3-nacl swaks libnet-ssleay-perl libio-socket-ssl-perl openssl chromium ca-certificates knot knot-dnsutils unbound)

TLS=$STATE/tls
PF=$STATE/postfix
PF_CONF=$PF/etc
PF_QUEUE=$PF/queue
PF_DATA=$PF/data
DOVE=$STATE/dovecot
AIO=$STATE/aiosmtpd
MAILBASE=$STATE/maildir
PF_MAILDIR=$MAILBASE/postfix
AIO_MAILDIR=$MAILBASE/aiosmtpd
IMAP_MAILDIR=$MAILBASE/imap
HARAKA=$STATE/haraka
HARAKA_NPM=$HARAKA/npm
HARAKA_CONF=$HARAKA/config
HARAKA_MAILDIR=$MAILBASE/haraka
AXE_NPM=$STATE/axe/npm
AXE_SCRIPT=$AXE_NPM/node_modules/axe-core/axe.min.js
MAILPIT=$STATE/mailpit
INBUCKET=$STATE/inbucket
DNS=$STATE/dns
POLICY=$STATE/policy
POLICY_TLS=$TLS/policy
RUN=$STATE/run
BIN=$STATE/bin
LOG=$STATE/log
ENVFILE=$STATE/env

say() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- packages

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			printf '%s\n' "$p"
		fi
	done
}

install_packages() {
	command -v dpkg-query >/dev/null || die "not a Debian system (no dpkg-query): install ${PACKAGES[*]} by hand"
	local missing
	missing=$(missing_packages)
	[ -z "$missing" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages: $(echo $missing); run as root or install them: apt-get install $(echo $missing)"
	say "installing: $(echo $missing)"
	export DEBIAN_FRONTEND=noninteractive
	# No interactive question, and no system-wide Postfix configuration.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
	"${apt[@]}" update -qq
	# shellcheck disable=SC2086
	"${apt[@]}" install -y -qq --no-install-recommends $missing >"$STATE/apt.log" 2>&1 ||
		{ tail -30 "$STATE/apt.log" >&2; die "apt-get install failed (full log: $STATE/apt.log)"; }
	missing=$(missing_packages)
	[ -z "$missing" ] || die "still missing after apt-get: $(echo $missing)"
}

# go_tool_current BIN MODULE VERSION: true if BIN was built from MODULE at VERSION.
go_tool_current() {
	[ -x "$1" ] && go version -m "$1" 2>/dev/null | grep -qP "^\tmod\t\Q$2\E\t\Q$3\E(\t|$)"
}

# install_go_tool NAME MODULE VERSION [PACKAGE]: go install PACKAGE (default
# MODULE)@VERSION into $BIN unless $BIN/NAME is already that version.
install_go_tool() {
	local name=$1 module=$2 version=$3 pkg=${4:-$2}
	command -v go >/dev/null || die "go is not on PATH: needed to install $name $version"
	go_tool_current "$BIN/$name" "$module" "$version" && return 0
	say "installing $name $version (go install $pkg@$version)"
	mkdir -p "$BIN"
	GOBIN=$BIN GOFLAGS=-buildvcs=false go install "$pkg@$version" >"$LOG/install-$name.log" 2>&1 ||
		{ tail -30 "$LOG/install-$name.log" >&2; die "go install $pkg@$version failed (log: $LOG/install-$name.log)"; }
	go_tool_current "$BIN/$name" "$module" "$version" || die "$BIN/$name is not $module $version after go install"
}

# haraka_current: true if $HARAKA_NPM holds Haraka $HARAKA_VERSION installed
# from the lock file in .ci/haraka.
haraka_current() {
	cmp -s "$HERE/haraka/package-lock.json" "$HARAKA_NPM/package-lock.json" &&
		[ "$(node -p "require('$HARAKA_NPM/node_modules/Haraka/package.json').version" 2>/dev/null)" = "$HARAKA_VERSION" ]
}

install_haraka() {
	command -v node >/dev/null && command -v npm >/dev/null ||
		die "node and npm are not on PATH: Haraka $HARAKA_VERSION needs Node.js 20 or later"
	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	[ "$major" -ge 20 ] || die "Node.js $(node --version) is too old for Haraka $HARAKA_VERSION (needs 20 or later)"
	haraka_current && return 0
	say "installing Haraka $HARAKA_VERSION (npm ci)"
	mkdir -p "$HARAKA_NPM"
	cp "$HERE/haraka/package.json" "$HERE/haraka/package-lock.json" "$HARAKA_NPM/"
	npm ci --prefix "$HARAKA_NPM" --no-audit --no-fund --loglevel=error >"$LOG/install-haraka.log" 2>&1 ||
		{ tail -30 "$LOG/install-haraka.log" >&2; die "npm ci for Haraka failed (log: $LOG/install-haraka.log)"; }
	haraka_current || die "Haraka $HARAKA_VERSION not found in $HARAKA_NPM after npm ci"
}

# axe_current: true if $AXE_NPM holds axe-core $AXE_VERSION installed from
# the lock file in .ci/axe, with its browser script.
axe_current() {
	cmp -s "$HERE/axe/package-lock.json" "$AXE_NPM/package-lock.json" &&
		[ "$(node -p "require('$AXE_NPM/node_modules/axe-core/package.json').version" 2>/dev/null)" = "$AXE_VERSION" ] &&
		[ -s "$AXE_SCRIPT" ]
}

install_axe() {
	command -v node >/dev/null && command -v npm >/dev/null ||
		die "node and npm are not on PATH: needed to install axe-core $AXE_VERSION for the accessibility tests"
	axe_current && return 0
	say "installing axe-core $AXE_VERSION (npm ci)"
	mkdir -p "$AXE_NPM"
	cp "$HERE/axe/package.json" "$HERE/axe/package-lock.json" "$AXE_NPM/"
	npm ci --prefix "$AXE_NPM" --no-audit --no-fund --loglevel=error >"$LOG/install-axe.log" 2>&1 ||
		{ tail -30 "$LOG/install-axe.log" >&2; die "npm ci for axe-core failed (log: $LOG/install-axe.log)"; }
	axe_current || die "axe-core $AXE_VERSION not found in $AXE_NPM after npm ci"
}

install_servers() {
	mkdir -p "$LOG"
	install_haraka
	install_axe
	install_go_tool mailpit "$MAILPIT_MODULE" "$MAILPIT_VERSION"
	install_go_tool inbucket "$INBUCKET_MODULE" "$INBUCKET_VERSION" "$INBUCKET_MODULE/cmd/inbucket"
}

# ---------------------------------------------------------------- helpers

# write_file PATH MODE: store stdin in PATH if it differs; returns 0 if changed.
write_file() {
	local path=$1 mode=$2 tmp
	tmp=$(mktemp "$path.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$path"
	return 0
}

# port_open PORT: true if something accepts TCP connections on HOST:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# greets PORT: true if the server on HOST:PORT sends an SMTP 220 greeting.
greets() {
	timeout 10 bash -c '
		exec 3<>/dev/tcp/'"$HOST"'/'"$1"' || exit 1
		IFS= read -r -t 8 line <&3 || exit 1
		printf "QUIT\r\n" >&3
		case $line in 220*) exit 0;; *) exit 1;; esac' 2>/dev/null
}

# tls_greets PORT: true if the server on HOST:PORT greets with 220 inside TLS
# that verifies against our CA.
tls_greets() {
	local out
	out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -quiet \
		-connect "$HOST:$1" -servername localhost -verify_return_error \
		-CAfile "$TLS/ca.pem" 2>/dev/null) || true
	case $out in 220*) return 0 ;; *) return 1 ;; esac
}

# imap_greets PORT: true if the server on HOST:PORT sends an IMAP "* OK" greeting.
imap_greets() {
	timeout 10 bash -c '
		exec 3<>/dev/tcp/'"$HOST"'/'"$1"' || exit 1
		IFS= read -r -t 8 line <&3 || exit 1
		printf "a LOGOUT\r\n" >&3
		case $line in "* OK"*) exit 0;; *) exit 1;; esac' 2>/dev/null
}

# imaps_greets PORT: the same inside TLS that verifies against our CA.
imaps_greets() {
	local out
	out=$(printf 'a LOGOUT\r\n' | timeout 10 openssl s_client -quiet \
		-connect "$HOST:$1" -servername localhost -verify_return_error \
		-CAfile "$TLS/ca.pem" 2>/dev/null) || true
	case $out in "* OK"*) return 0 ;; *) return 1 ;; esac
}

# pid_alive PIDFILE WORD: true if the process in PIDFILE runs and its command
# line contains WORD (a stale pid file may name a reused pid).
pid_alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

postfix_running() { postfix -c "$PF_CONF" status >/dev/null 2>&1; }
dovecot_running() { pid_alive "$DOVE/run/master.pid" dovecot; }
aiosmtpd_running() { pid_alive "$AIO/pid" aiosmtpd; }

# ---------------------------------------------------------------- certificates

# Returns 0 if new certificates were made.
make_certs() {
	mkdir -p "$TLS"
	chmod 755 "$TLS"
	if [ -s "$TLS/ca.pem" ] && [ -s "$TLS/ca.key" ] && [ -s "$TLS/server.pem" ] && [ -s "$TLS/server.key" ] &&
		openssl x509 -checkend 86400 -noout -in "$TLS/ca.pem" >/dev/null 2>&1 &&
		openssl x509 -checkend 86400 -noout -in "$TLS/server.pem" >/dev/null 2>&1 &&
		openssl verify -CAfile "$TLS/ca.pem" "$TLS/server.pem" >/dev/null 2>&1; then
		return 1
	fi
	say "generating test CA and server certificate in $TLS"
	local tmp
	tmp=$(mktemp -d "$TLS/gen.XXXXXX")
	openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
		-keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
		-subj "/O=sockmail tests/CN=sockmail test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -sha256 \
		-keyout "$tmp/server.key" -out "$tmp/server.csr" \
		-subj "/O=sockmail tests/CN=localhost" 2>/dev/null
	cat >"$tmp/ext.cnf" <<-EOF
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature,keyEncipherment
		extendedKeyUsage = serverAuth
		subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid,issuer
	EOF
	openssl x509 -req -sha256 -days 825 -in "$tmp/server.csr" \
		-CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-extfile "$tmp/ext.cnf" -out "$tmp/server.pem" 2>/dev/null
	chmod 600 "$tmp/ca.key" "$tmp/server.key"
	chmod 644 "$tmp/ca.pem" "$tmp/server.pem"
	mv -f "$tmp/ca.key" "$tmp/ca.pem" "$tmp/server.key" "$tmp/server.pem" "$TLS/"
	rm -rf "$tmp"
	return 0
}

# ---------------------------------------------------------------- configuration

# Sets PF_CHANGED / DOVE_CHANGED / AIO_CHANGED to 1 when a file changed.
write_configs() {
	local nobody_uid nobody_gid
	nobody_uid=$(id -u nobody)
	nobody_gid=$(id -g nobody)

	mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$DOVE/run" "$DOVE/state" "$AIO" "$LOG" \
		"$PF_MAILDIR"/{new,cur,tmp} "$AIO_MAILDIR"/{new,cur,tmp} "$IMAP_MAILDIR"/{new,cur,tmp}
	chmod 755 "$STATE" "$PF" "$PF_CONF" "$MAILBASE" "$LOG"
	chown postfix:postfix "$PF_DATA"
	chown "$nobody_uid:$nobody_gid" "$PF_MAILDIR" "$PF_MAILDIR"/{new,cur,tmp} "$IMAP_MAILDIR" "$IMAP_MAILDIR"/{new,cur,tmp}

	write_file "$PF_CONF/main.cf" 644 <<-EOF && PF_CHANGED=1
		# Generated by .ci/servers.sh: a closed, loopback-only Postfix for tests.
		compatibility_level = 3.6
		config_directory = $PF_CONF
		queue_directory = $PF_QUEUE
		data_directory = $PF_DATA
		mail_owner = postfix
		setgid_group = postdrop
		maillog_file = $LOG/postfix.log
		maillog_file_prefixes = $LOG
		syslog_name = sockmail-test-postfix

		myhostname = localhost
		mydomain = example.test
		myorigin = \$myhostname
		smtpd_banner = \$myhostname ESMTP sockmail test Postfix
		inet_interfaces = $HOST
		inet_protocols = ipv4
		mynetworks = $HOST/32
		biff = no
		append_dot_mydomain = no
		readme_directory = no
		notify_classes =
		maximal_queue_lifetime = 1h
		bounce_queue_lifetime = 1h

		# Nothing leaves this machine.
		smtp_dns_support_level = disabled
		smtpd_peername_lookup = no
		mydestination =
		relay_domains =
		local_recipient_maps =
		alias_maps =
		alias_database =
		local_transport = error:5.1.1 local delivery is disabled in this test instance
		default_transport = error:5.7.1 this test instance never sends mail off the machine
		relay_transport = error:5.7.1 this test instance never sends mail off the machine

		# Any local part at $DOMAIN goes into one Maildir: $PF_MAILDIR/
		virtual_mailbox_domains = $DOMAIN
		virtual_mailbox_base = $MAILBASE
		virtual_mailbox_maps = regexp:$PF_CONF/vmailbox
		virtual_alias_maps =
		virtual_uid_maps = static:$nobody_uid
		virtual_gid_maps = static:$nobody_gid
		virtual_mailbox_limit = 0
		mailbox_size_limit = 0
		message_size_limit = $MESSAGE_SIZE_LIMIT

		smtputf8_enable = yes

		# TLS: a certificate from the test CA in $TLS.
		smtpd_tls_chain_files = $TLS/server.key, $TLS/server.pem
		smtpd_tls_security_level = may
		smtpd_tls_loglevel = 1
		smtpd_tls_received_header = yes
		smtp_tls_security_level = none

		# SASL through Dovecot (enabled per service in master.cf).
		smtpd_sasl_type = dovecot
		smtpd_sasl_path = private/auth
		smtpd_sasl_auth_enable = no
		smtpd_sasl_security_options = noanonymous
		smtpd_sasl_tls_security_options = noanonymous
		smtpd_sasl_authenticated_header = yes
		broken_sasl_auth_clients = no

		# Restrictions: sender checks answer at MAIL FROM (no delay), relaying
		# needs AUTH (554 5.7.1 Relay access denied otherwise), and failure
		# injection tables.
		smtpd_delay_reject = no
		smtpd_client_restrictions =
		smtpd_helo_restrictions =
		smtpd_sender_restrictions = check_sender_access texthash:$PF_CONF/sender_access
		smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
		smtpd_recipient_restrictions = check_recipient_access texthash:$PF_CONF/recipient_access
		header_checks = regexp:$PF_CONF/header_checks
	EOF

	write_file "$PF_CONF/master.cf" 644 <<-EOF && PF_CHANGED=1
		# Generated by .ci/servers.sh. No chroot. No smtp/lmtp client: mail cannot leave.
		# service type  private unpriv  chroot  wakeup  maxproc command
		$HOST:$SMTP_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/smtp-$SMTP_PORT
		  -o smtpd_tls_security_level=may
		  -o smtpd_sasl_auth_enable=no
		$HOST:$SMTPS_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/smtps-$SMTPS_PORT
		  -o smtpd_tls_wrappermode=yes
		  -o smtpd_sasl_auth_enable=yes
		  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
		$HOST:$SUBMISSION_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/submission-$SUBMISSION_PORT
		  -o smtpd_tls_security_level=encrypt
		  -o smtpd_sasl_auth_enable=yes
		  -o smtpd_tls_auth_only=yes
		  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
		# sockmail check's policy tests: the same server behind three certificates.
		$HOST:$POLICY_GOOD_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/policy-good-$POLICY_GOOD_PORT
		  -o smtpd_tls_security_level=may
		  -o smtpd_sasl_auth_enable=no
		  -o smtpd_tls_chain_files=$POLICY_TLS/good-chain.pem
		$HOST:$POLICY_EXPIRED_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/policy-expired-$POLICY_EXPIRED_PORT
		  -o smtpd_tls_security_level=may
		  -o smtpd_sasl_auth_enable=no
		  -o smtpd_tls_chain_files=$POLICY_TLS/expired-chain.pem
		$HOST:$POLICY_OTHERNAME_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/policy-othername-$POLICY_OTHERNAME_PORT
		  -o smtpd_tls_security_level=may
		  -o smtpd_sasl_auth_enable=no
		  -o smtpd_tls_chain_files=$POLICY_TLS/othername-chain.pem
		# Monitors' certificate-expiry test: a certificate for localhost that ends in 4 to 5 days.
		$HOST:$CERT_SOON_PORT inet n - n - - smtpd
		  -o syslog_name=sockmail-test-postfix/cert-soon-$CERT_SOON_PORT
		  -o smtpd_tls_security_level=may
		  -o smtpd_sasl_auth_enable=no
		  -o smtpd_tls_chain_files=$POLICY_TLS/soon-chain.pem
		pickup    unix  n       -       n       60      1       pickup
		cleanup   unix  n       -       n       -       0       cleanup
		qmgr      unix  n       -       n       300     1       qmgr
		tlsmgr    unix  -       -       n       1000?   1       tlsmgr
		rewrite   unix  -       -       n       -       -       trivial-rewrite
		bounce    unix  -       -       n       -       0       bounce
		defer     unix  -       -       n       -       0       bounce
		trace     unix  -       -       n       -       0       bounce
		verify    unix  -       -       n       -       1       verify
		flush     unix  n       -       n       1000?   0       flush
		proxymap  unix  -       -       n       -       -       proxymap
		proxywrite unix -       -       n       -       1       proxymap
		showq     unix  n       -       n       -       -       showq
		error     unix  -       -       n       -       -       error
		retry     unix  -       -       n       -       -       error
		discard   unix  -       -       n       -       -       discard
		virtual   unix  -       n       n       -       -       virtual
		anvil     unix  -       -       n       -       1       anvil
		scache    unix  -       -       n       -       1       scache
		postlog   unix-dgram n  -       n       -       1       postlogd
	EOF

	write_file "$PF_CONF/vmailbox" 644 <<-EOF && PF_CHANGED=1
		# $IMAP_USER -> the IMAP mailbox $IMAP_MAILDIR/ (first match wins)
		/^monitor@example\.test\$/ imap/
		# every other address at $DOMAIN -> the Maildir $PF_MAILDIR/
		/@example\.test\$/ postfix/
	EOF

	write_file "$PF_CONF/recipient_access" 644 <<-'EOF' && PF_CHANGED=1
		# Postfix prefixes the text with "<address>: Recipient address rejected: ".
		reject550@example.test 550 5.1.1 User unknown (test)
		temp451@example.test   451 4.3.0 Temporary failure (test)
		full452@example.test   452 4.2.2 Mailbox full (test)
	EOF

	write_file "$PF_CONF/sender_access" 644 <<-'EOF' && PF_CHANGED=1
		# Postfix prefixes the text with "<address>: Sender address rejected: ".
		reject550@example.test 550 5.7.1 Access denied (test)
		temp451@example.test   451 4.3.0 Temporary failure (test)
	EOF

	write_file "$PF_CONF/header_checks" 644 <<-'EOF' && PF_CHANGED=1
		/^X-Test-Reject:[[:space:]]*yes[[:space:]]*$/ REJECT Message content rejected (test)
	EOF

	write_file "$DOVE/users" 640 <<-EOF && DOVE_CHANGED=1
		$TEST_USER:{PLAIN}$TEST_PASSWORD
		$IMAP_USER:{PLAIN}$IMAP_PASSWORD
	EOF
	chgrp dovecot "$DOVE/users"

	write_file "$DOVE/dovecot.conf" 644 <<-EOF && DOVE_CHANGED=1
		# Generated by .ci/servers.sh: Dovecot as SASL server for the test Postfix,
		# and an IMAP server (loopback only) for the monitor mailbox $IMAP_MAILDIR.
		instance_name = sockmail-test-dovecot
		base_dir = $DOVE/run
		state_dir = $DOVE/state
		log_path = $LOG/dovecot.log
		protocols = imap
		listen = $HOST
		ssl = yes
		ssl_cert = <$TLS/server.pem
		ssl_key = <$TLS/server.key
		ssl_min_protocol = TLSv1.2
		mail_location = maildir:$IMAP_MAILDIR
		login_greeting = sockmail test Dovecot ready.
		service imap-login {
		  inet_listener imap {
		    address = $HOST
		    port = $IMAP_PORT
		  }
		  inet_listener imaps {
		    address = $HOST
		    port = $IMAPS_PORT
		    ssl = yes
		  }
		}
		disable_plaintext_auth = no
		auth_mechanisms = plain login cram-md5
		auth_failure_delay = 0
		auth_verbose = yes
		default_internal_user = dovecot
		default_login_user = dovenull
		passdb {
		  driver = passwd-file
		  args = scheme=PLAIN username_format=%u $DOVE/users
		}
		userdb {
		  driver = static
		  args = uid=$nobody_uid gid=$nobody_gid home=/nonexistent
		}
		# The auth process cannot reach anvil's penalty socket, which turns off
		# Dovecot's per-IP auth penalty (2-15 s delays after failed AUTHs).
		service anvil {
		  unix_listener anvil-auth-penalty {
		    user = root
		    mode = 0
		  }
		}
		service auth {
		  unix_listener $PF_QUEUE/private/auth {
		    mode = 0660
		    user = postfix
		    group = postfix
		  }
		}
	EOF

	# aiosmtpd: the command line and the handler decide whether to restart.
	AIO_CMD=("$PY" -m aiosmtpd -n -c aiosmtpd_sink.MaildirSink -l "$HOST:$AIOSMTPD_PORT"
		-s "$MESSAGE_SIZE_LIMIT" -u --tlscert "$TLS/server.pem" --tlskey "$TLS/server.key"
		--no-requiretls "$AIO_MAILDIR")
	{
		printf '%q ' "${AIO_CMD[@]}"
		echo
		cat "$HERE/aiosmtpd_sink.py"
	} | write_file "$AIO/fingerprint" 644 && AIO_CHANGED=1
	return 0
}

# Haraka, Mailpit and Inbucket: sets HARAKA_CHANGED / MAILPIT_CHANGED /
# INBUCKET_CHANGED to 1 when a file or command line changed.
write_peer_configs() {
	# An older layout had a plugins folder in config/, where the plugin list goes.
	[ -d "$HARAKA_CONF/plugins" ] && rm -rf "$HARAKA_CONF/plugins"
	mkdir -p "$HARAKA_CONF" "$HARAKA/plugins" "$HARAKA_MAILDIR"/{new,cur,tmp} "$MAILPIT" "$INBUCKET"
	local shipped=$HARAKA_NPM/node_modules/Haraka/config
	# connection.ini carries the greeting and the limits: Haraka's own file.
	write_file "$HARAKA_CONF/connection.ini" 644 <"$shipped/connection.ini" && HARAKA_CHANGED=1
	write_file "$HARAKA_CONF/smtp.ini" 644 <<-EOF && HARAKA_CHANGED=1
		; Generated by .ci/servers.sh: a closed, loopback-only Haraka for tests.
		listen=$HOST:$HARAKA_PORT,$HOST:$HARAKA_SMTPS_PORT
		smtps_port=$HARAKA_SMTPS_PORT
		nodes=0
		inactivity_timeout=300
	EOF
	write_file "$HARAKA_CONF/me" 644 <<<"localhost" && HARAKA_CHANGED=1
	write_file "$HARAKA_CONF/log.ini" 644 <<-EOF && HARAKA_CHANGED=1
		[main]
		level=info
		timestamps=true
	EOF
	write_file "$HARAKA_CONF/tls_key.pem" 600 <"$TLS/server.key" && HARAKA_CHANGED=1
	write_file "$HARAKA_CONF/tls_cert.pem" 644 <"$TLS/server.pem" && HARAKA_CHANGED=1
	write_file "$HARAKA_CONF/tls.ini" 644 <<-EOF && HARAKA_CHANGED=1
		key=tls_key.pem
		cert=tls_cert.pem
	EOF
	write_file "$HARAKA_CONF/auth_flat_file.ini" 600 <<-EOF && HARAKA_CHANGED=1
		[core]
		methods=PLAIN,LOGIN,CRAM-MD5
		[users]
		$TEST_USER=$TEST_PASSWORD
	EOF
	# Haraka's own outbound delivery (used for relayed mail when no queue
	# plugin takes it) never runs: nothing can leave the machine.
	write_file "$HARAKA_CONF/outbound.ini" 644 <<-EOF && HARAKA_CHANGED=1
		disabled=true
	EOF
	write_file "$HARAKA_CONF/host_list" 644 <<<"$DOMAIN" && HARAKA_CHANGED=1
	write_file "$HARAKA_CONF/queue_maildir" 644 <<<"$HARAKA_MAILDIR" && HARAKA_CHANGED=1
	write_file "$HARAKA/plugins/queue_maildir.js" 644 <"$HERE/haraka/queue_maildir.js" && HARAKA_CHANGED=1
	# No DNS-based plugin, no relaying: mail for $DOMAIN goes into the Maildir,
	# anything else is refused at RCPT unless authenticated, and then it too
	# only reaches the Maildir (queue_maildir answers hook_queue_outbound).
	write_file "$HARAKA_CONF/plugins" 644 <<-EOF && HARAKA_CHANGED=1
		tls
		auth/flat_file
		rcpt_to.in_host_list
		queue_maildir
	EOF
	# -c names the root: config/ and plugins/ are inside it.
	HARAKA_CMD=(node "$HARAKA_NPM/node_modules/Haraka/bin/haraka" -c "$HARAKA")
	printf '%q ' "${HARAKA_CMD[@]}" | write_file "$HARAKA/fingerprint" 644 && HARAKA_CHANGED=1

	# Mailpit: one instance with STARTTLS offered, one with implicit TLS; both
	# accept any AUTH credentials (after TLS) and never relay.
	local common=(--smtp-tls-cert "$TLS/server.pem" --smtp-tls-key "$TLS/server.key"
		--smtp-auth-accept-any --smtp-disable-rdns --disable-version-check
		--max 2000 --max-age 1d --max-message-size 60 --smtp-max-recipients 200)
	MAILPIT_CMD=("$BIN/mailpit" --smtp "$HOST:$MAILPIT_PORT" --listen "$HOST:$MAILPIT_HTTP_PORT"
		--database "$MAILPIT/starttls.db" "${common[@]}")
	MAILPIT_TLS_CMD=("$BIN/mailpit" --smtp "$HOST:$MAILPIT_TLS_PORT" --listen "$HOST:$MAILPIT_TLS_HTTP_PORT"
		--database "$MAILPIT/tls.db" --smtp-require-tls "${common[@]}")
	{
		printf '%q ' "${MAILPIT_CMD[@]}"
		echo
		printf '%q ' "${MAILPIT_TLS_CMD[@]}"
		echo
		go version -m "$BIN/mailpit" 2>/dev/null | grep -P '^\tmod\t' || true
	} | write_file "$MAILPIT/fingerprint" 644 && MAILPIT_CHANGED=1

	# Inbucket: configured by environment; messages in memory for an hour.
	INBUCKET_ENV=(
		INBUCKET_SMTP_ADDR="$HOST:$INBUCKET_PORT"
		INBUCKET_WEB_ADDR="$HOST:$INBUCKET_HTTP_PORT"
		INBUCKET_POP3_ADDR="$HOST:$INBUCKET_POP3_PORT"
		INBUCKET_SMTP_DOMAIN=localhost
		INBUCKET_SMTP_TLSENABLED=true
		INBUCKET_SMTP_TLSCERT="$TLS/server.pem"
		INBUCKET_SMTP_TLSPRIVKEY="$TLS/server.key"
		INBUCKET_SMTP_MAXMESSAGEBYTES="$MESSAGE_SIZE_LIMIT"
		INBUCKET_STORAGE_TYPE=memory
		INBUCKET_STORAGE_RETENTIONPERIOD=1h
		INBUCKET_WEB_MONITORVISIBLE=false
	)
	# The same with implicit TLS on other ports.
	INBUCKET_TLS_ENV=("${INBUCKET_ENV[@]}"
		INBUCKET_SMTP_ADDR="$HOST:$INBUCKET_TLS_PORT"
		INBUCKET_WEB_ADDR="$HOST:$INBUCKET_TLS_HTTP_PORT"
		INBUCKET_POP3_ADDR="$HOST:$INBUCKET_TLS_POP3_PORT"
		INBUCKET_SMTP_FORCETLS=true
	)
	{
		printf '%q ' "${INBUCKET_ENV[@]}"
		echo
		printf '%q ' "${INBUCKET_TLS_ENV[@]}"
		echo
		go version -m "$BIN/inbucket" 2>/dev/null | grep -P '^\tmod\t' || true
	} | write_file "$INBUCKET/fingerprint" 644 && INBUCKET_CHANGED=1
	return 0
}

# ---------------------------------------------------------------- start / stop

start_dovecot() {
	if dovecot_running; then
		if [ "$DOVE_CHANGED" = 1 ]; then
			say "reloading dovecot"
			TOUCHED=1
			kill -HUP "$(cat "$DOVE/run/master.pid")"
		fi
		return 0
	fi
	say "starting dovecot (SASL)"
	TOUCHED=1
	dovecot -c "$DOVE/dovecot.conf" || { tail -20 "$LOG/dovecot.log" >&2 || true; die "dovecot did not start"; }
}

# check_ports_free: before starting anything, make sure that no other
# program (another state dir's servers, say) holds a port we are to open.
check_ports_free() {
	local ports=() p
	postfix_running || ports+=("$SMTP_PORT" "$SMTPS_PORT" "$SUBMISSION_PORT" "$POLICY_GOOD_PORT" "$POLICY_EXPIRED_PORT" "$POLICY_OTHERNAME_PORT" "$CERT_SOON_PORT")
	dovecot_running || ports+=("$IMAP_PORT" "$IMAPS_PORT")
	daemon_running mtasts mta_sts_server || ports+=("$MTASTS_PORT")
	aiosmtpd_running || ports+=("$AIOSMTPD_PORT")
	daemon_running haraka haraka || ports+=("$HARAKA_PORT" "$HARAKA_SMTPS_PORT")
	daemon_running mailpit mailpit || ports+=("$MAILPIT_PORT" "$MAILPIT_HTTP_PORT")
	daemon_running mailpit-tls mailpit || ports+=("$MAILPIT_TLS_PORT" "$MAILPIT_TLS_HTTP_PORT")
	daemon_running inbucket inbucket || ports+=("$INBUCKET_PORT" "$INBUCKET_HTTP_PORT" "$INBUCKET_POP3_PORT")
	daemon_running inbucket-tls inbucket || ports+=("$INBUCKET_TLS_PORT" "$INBUCKET_TLS_HTTP_PORT" "$INBUCKET_TLS_POP3_PORT")
	daemon_running knot knotd || ports+=("$KNOT_PORT")
	daemon_running unbound unbound || ports+=("$UNBOUND_PORT")
	for p in "${ports[@]}"; do
		if port_open "$p"; then
			die "port $HOST:$p is taken by another program: $(ss -ltnpH "sport = :$p" 2>/dev/null)"
		fi
	done
	return 0
}

# Creates missing queue directories (Dovecot's auth socket goes into one).
prepare_postfix() {
	postfix -c "$PF_CONF" check 2>&1 | grep -v -e 'not owned by' -e 'group or other writable' >&2 || true
	[ -d "$PF_QUEUE/private" ] || die "postfix check did not create $PF_QUEUE/private"
}

start_postfix() {
	if postfix_running; then
		if [ "$PF_CHANGED" = 1 ]; then
			say "reloading postfix"
			TOUCHED=1
			postfix -c "$PF_CONF" reload >/dev/null 2>&1
		fi
		return 0
	fi
	say "starting postfix"
	TOUCHED=1
	postfix -c "$PF_CONF" start >/dev/null 2>&1 || { tail -20 "$LOG/postfix.log" >&2 || true; die "postfix did not start"; }
}

start_aiosmtpd() {
	if aiosmtpd_running; then
		[ "$AIO_CHANGED" = 1 ] || return 0
		say "restarting aiosmtpd"
		stop_aiosmtpd
	fi
	say "starting aiosmtpd"
	TOUCHED=1
	cp "$HERE/aiosmtpd_sink.py" "$AIO/aiosmtpd_sink.py"
	(
		cd "$AIO"
		PYTHONPATH=$AIO PYTHONUNBUFFERED=1 setsid "${AIO_CMD[@]}" </dev/null >>"$LOG/aiosmtpd.log" 2>&1 &
		echo $! >"$AIO/pid"
	)
}

stop_aiosmtpd() {
	if aiosmtpd_running; then
		local pid
		pid=$(cat "$AIO/pid")
		kill "$pid" 2>/dev/null || true
		# Not kill -0: where PID 1 does not reap orphans, a dead server
		# stays a zombie, whose command line is empty.
		for _ in $(seq 50); do
			aiosmtpd_running || break
			sleep 0.1
		done
		aiosmtpd_running && kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$AIO/pid"
}

# daemon_running NAME WORD: the process in $RUN/NAME.pid runs and its
# command line contains WORD.
daemon_running() { pid_alive "$RUN/$1.pid" "$2"; }

# start_daemon NAME WORD CHANGED DIR COMMAND...: start COMMAND in DIR, in the
# background with its output in $LOG/NAME.log, unless it already runs; a
# running one is restarted when CHANGED is 1.
start_daemon() {
	local name=$1 word=$2 changed=$3 dir=$4
	shift 4
	if daemon_running "$name" "$word"; then
		[ "$changed" = 1 ] || return 0
		say "restarting $name"
		stop_daemon "$name" "$word"
	fi
	say "starting $name"
	TOUCHED=1
	mkdir -p "$RUN"
	(
		cd "$dir"
		setsid "$@" </dev/null >>"$LOG/$name.log" 2>&1 &
		echo $! >"$RUN/$name.pid"
	)
}

# stop_daemon NAME WORD: TERM, then KILL if it has not gone after 50 polls.
stop_daemon() {
	if daemon_running "$1" "$2"; then
		local pid
		pid=$(cat "$RUN/$1.pid")
		say "stopping $1"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			daemon_running "$1" "$2" || break
			sleep 0.1
		done
		daemon_running "$1" "$2" && kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$RUN/$1.pid"
}

# The daemons beside Postfix and aiosmtpd: name, word in the command line.
PEERS=(haraka:haraka mailpit:mailpit mailpit-tls:mailpit inbucket:inbucket inbucket-tls:inbucket knot:knotd unbound:unbound mtasts:mta_sts_server)

start_peers() {
	start_daemon haraka haraka "$HARAKA_CHANGED" "$HARAKA" "${HARAKA_CMD[@]}"
	start_daemon mailpit mailpit "$MAILPIT_CHANGED" "$MAILPIT" "${MAILPIT_CMD[@]}"
	start_daemon mailpit-tls mailpit "$MAILPIT_CHANGED" "$MAILPIT" "${MAILPIT_TLS_CMD[@]}"
	start_daemon inbucket inbucket "$INBUCKET_CHANGED" "$INBUCKET" env "${INBUCKET_ENV[@]}" "$BIN/inbucket"
	start_daemon inbucket-tls inbucket "$INBUCKET_CHANGED" "$INBUCKET" env "${INBUCKET_TLS_ENV[@]}" "$BIN/inbucket"
	start_daemon mtasts mta_sts_server "$MTASTS_CHANGED" "$POLICY" "${MTASTS_CMD[@]}"
}

# http_ok URL: true if URL answers 200.
http_ok() {
	curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null
}

start_postgres() {
	command -v pg_isready >/dev/null || return 0
	pg_isready -q -h "$HOST" -p 5432 && return 0
	if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ "$(id -u)" = 0 ]; then
		local v
		for v in /etc/postgresql/*/; do
			v=$(basename "$v")
			say "starting PostgreSQL $v"
			pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
		done
	fi
}

# all_ready: true when every server answers: SMTP greetings (in TLS where
# implicit), the SASL socket, the REST APIs.
all_ready() {
	greets "$SMTP_PORT" && greets "$SUBMISSION_PORT" && greets "$AIOSMTPD_PORT" &&
		tls_greets "$SMTPS_PORT" && [ -S "$PF_QUEUE/private/auth" ] &&
		greets "$HARAKA_PORT" && tls_greets "$HARAKA_SMTPS_PORT" &&
		greets "$MAILPIT_PORT" && tls_greets "$MAILPIT_TLS_PORT" &&
		greets "$INBUCKET_PORT" && tls_greets "$INBUCKET_TLS_PORT" &&
		http_ok "http://$HOST:$MAILPIT_HTTP_PORT/api/v1/messages?limit=1" &&
		http_ok "http://$HOST:$MAILPIT_TLS_HTTP_PORT/api/v1/messages?limit=1" &&
		http_ok "http://$HOST:$INBUCKET_HTTP_PORT/api/v1/mailbox/ready-check" &&
		http_ok "http://$HOST:$INBUCKET_TLS_HTTP_PORT/api/v1/mailbox/ready-check" &&
		greets "$POLICY_GOOD_PORT" && greets "$POLICY_EXPIRED_PORT" && greets "$POLICY_OTHERNAME_PORT" &&
		greets "$CERT_SOON_PORT" && imap_greets "$IMAP_PORT" && imaps_greets "$IMAPS_PORT" &&
		mtasts_ok && dns_ready
}

# wait_ready: after a start or reload, poll until every server answers, at
# most READY_POLLS times (a generous count: a loaded machine forks slowly,
# and Haraka's first start makes DH parameters); when nothing was touched, a
# TCP connect to each port is enough.
READY_POLLS=1500
wait_ready() {
	local p all=("$SMTP_PORT" "$SUBMISSION_PORT" "$SMTPS_PORT" "$AIOSMTPD_PORT" "$HARAKA_PORT" "$HARAKA_SMTPS_PORT"
		"$MAILPIT_PORT" "$MAILPIT_HTTP_PORT" "$MAILPIT_TLS_PORT" "$MAILPIT_TLS_HTTP_PORT"
		"$INBUCKET_PORT" "$INBUCKET_HTTP_PORT" "$INBUCKET_TLS_PORT" "$INBUCKET_TLS_HTTP_PORT"
		"$KNOT_PORT" "$UNBOUND_PORT" "$POLICY_GOOD_PORT" "$POLICY_EXPIRED_PORT" "$POLICY_OTHERNAME_PORT" "$MTASTS_PORT"
		"$CERT_SOON_PORT" "$IMAP_PORT" "$IMAPS_PORT")
	if [ "$TOUCHED" = 0 ] && [ -S "$PF_QUEUE/private/auth" ]; then
		local open=1
		for p in "${all[@]}"; do port_open "$p" || { open=0; break; }; done
		[ "$open" = 1 ] && return 0
	fi
	local peer
	for _ in $(seq "$READY_POLLS"); do
		all_ready && return 0
		# A daemon that has exited will not answer however long we wait.
		for peer in "${PEERS[@]}"; do
			daemon_running "${peer%%:*}" "${peer#*:}" && continue
			tail -20 "$LOG/${peer%%:*}.log" >&2 || true
			die "${peer%%:*} exited (log: $LOG/${peer%%:*}.log)"
		done
		sleep 0.2
	done
	status >&2 || true
	die "servers did not all answer after $READY_POLLS polls; logs in $LOG"
}

# ---------------------------------------------------------------- DNS
# Knot serves the test zones (check.test. signed with DNSSEC by Knot itself,
# insecure.test. unsigned, 127.in-addr.arpa. for reverse DNS); Unbound, a
# validating resolver trusting check.test.'s key, stubs to it. Both listen on
# loopback only; Unbound answers nothing outside the test zones and localhost.
# sockmail check's tests use Unbound (DNS_RESOLVER in env).

# write_dns_configs: sets DNS_CHANGED to 1 when a file changed.
write_dns_configs() {
	mkdir -p "$DNS/knot/zones" "$DNS/knot/db" "$DNS/knot/run" "$DNS/unbound" "$LOG" "$RUN"
	write_file "$DNS/knot/knot.conf" 644 <<-EOF && DNS_CHANGED=1
		# Generated by .ci/servers.sh: authoritative test zones on loopback.
		server:
		    listen: $HOST@$KNOT_PORT
		    rundir: $DNS/knot/run
		    pidfile: $DNS/knot/run/knot.pid
		log:
		  - target: stderr
		    any: info
		database:
		    storage: $DNS/knot/db
		control:
		    listen: $DNS/knot/run/knot.sock
		policy:
		  - id: test
		    algorithm: ecdsap256sha256
		    nsec3: off
		template:
		  - id: default
		    storage: $DNS/knot/zones
		    file: "%s.zone"
		    zonefile-sync: -1
		    zonefile-load: whole
		    journal-content: none
		    semantic-checks: on
		zone:
		  - domain: check.test.
		    dnssec-signing: on
		    dnssec-policy: test
		  - domain: insecure.test.
		  - domain: 127.in-addr.arpa.
		  - domain: sender.test.
		  - domain: dmarcorg.test.
		  - domain: policy.test.
		    dnssec-signing: on
		    dnssec-policy: test
		  - domain: bogus.test.
		    dnssec-signing: on
		    dnssec-policy: test
		  - domain: nodnssec.test.
	EOF
	# check.test.: every case sockmail check must tell apart. The MX records
	# of the apex are written out of preference order on purpose.
	write_file "$DNS/knot/zones/check.test.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN check.test.
		$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		; three MX hosts, preferences 20, 10, 30 (checked in order 10, 20, 30)
		@          MX    20 mx2
		@          MX    10 mx1
		@          MX    30 mx3
		mx1        A     127.0.0.1
		mx2        A     127.0.0.1
		mx3        A     127.0.0.1
		; four MX hosts, checked in parallel (bounded): TestHostsInParallel
		four       MX    10 mx1
		four       MX    20 mx2
		four       MX    30 mx3
		four       MX    40 mx4
		mx4        A     127.0.0.1
		; a domain whose MX is the test Postfix under the name its certificate has
		good       MX    10 localhost.
		; no MX: the domain itself is the implicit MX (RFC 5321 5.1)
		implicit   A     127.0.0.1
		; null MX: accepts no mail (RFC 7505); and one mixed with a real MX
		nullmx     MX    0 .
		nullmix    MX    0 .
		nullmix    MX    10 mx1
		; an MX host without any address
		nohost     MX    10 nowhere
		; an MX host that is an alias (RFC 2181 10.3 forbids it)
		alias      MX    10 mxalias
		mxalias    CNAME mx1
		; reverse DNS that does not resolve back: 127.0.0.2 -> far -> 127.0.0.3
		fcrdns     MX    10 mxfar
		mxfar      A     127.0.0.2
		far        A     127.0.0.3
		; no reverse DNS at all: 127.0.0.4 has no PTR
		noptr      MX    10 mxnoptr
		mxnoptr    A     127.0.0.4
		; names for each test server, for server checks (host:port)
		postfix    A     127.0.0.1
		aiosmtpd   A     127.0.0.1
		haraka     A     127.0.0.1
		mailpit    A     127.0.0.1
		inbucket   A     127.0.0.1
	EOF
	write_file "$DNS/knot/zones/insecure.test.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN insecure.test.
		$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		@          MX    10 mx
		mx         A     127.0.0.1
	EOF
	write_file "$DNS/knot/zones/127.in-addr.arpa.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN 127.in-addr.arpa.
		$TTL 60
		@          SOA   ns.check.test. hostmaster.check.test. 1 3600 600 86400 60
		@          NS    ns.check.test.
		1.0.0      PTR   localhost.
		2.0.0      PTR   far.check.test.
	EOF
	# sender.test.: the sender side of sockmail check (SPF, DMARC, DKIM, RFC
	# 6186 submission SRV records). Unsigned, like insecure.test.
	write_file "$DNS/knot/zones/sender.test.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN sender.test.
		$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		; SPF: a range that passes and the rest fails, softfails or is neutral
		ip         TXT   "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"
		soft       TXT   "v=spf1 ip4:192.0.2.1 ~all"
		neutral    TXT   "v=spf1 ?all"
		; an include chain three deep, and a redirect
		inc        TXT   "v=spf1 include:inc1.sender.test -all"
		inc1       TXT   "v=spf1 include:inc2.sender.test ~all"
		inc2       TXT   "v=spf1 ip4:203.0.113.7 -all"
		redir      TXT   "v=spf1 redirect=inc2.sender.test"
		; a and mx mechanisms, and exists with a macro
		amx        TXT   "v=spf1 a mx:amx.sender.test/32 -all"
		amx        A     127.0.0.9
		amx        MX    10 amxmail
		amxmail    A     127.0.0.10
		macro      TXT   "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"
		; an include loop, and the same include twice (its lookups count twice)
		loop       TXT   "v=spf1 ip4:192.0.2.1 include:loop2.sender.test -all"
		loop2      TXT   "v=spf1 include:loop.sender.test -all"
		twice      TXT   "v=spf1 include:inc.sender.test include:inc.sender.test -all"
		; ptr: 127.0.0.1's reverse name is localhost, which resolves back
		ptr        TXT   "v=spf1 ptr:localhost -all"
		5.2.0.192.in-addr._spf.macro A 127.0.0.2
		; eleven includes: over the limit of ten DNS-querying terms
		many       TXT   "v=spf1 include:n1.sender.test include:n2.sender.test include:n3.sender.test include:n4.sender.test include:n5.sender.test include:n6.sender.test" " include:n7.sender.test include:n8.sender.test include:n9.sender.test include:n10.sender.test include:n11.sender.test -all"
		n1         TXT   "v=spf1 -all"
		n2         TXT   "v=spf1 -all"
		n3         TXT   "v=spf1 -all"
		n4         TXT   "v=spf1 -all"
		n5         TXT   "v=spf1 -all"
		n6         TXT   "v=spf1 -all"
		n7         TXT   "v=spf1 -all"
		n8         TXT   "v=spf1 -all"
		n9         TXT   "v=spf1 -all"
		n10        TXT   "v=spf1 -all"
		n11        TXT   "v=spf1 -all"
		; three lookups of names that do not exist: over the limit of two
		void       TXT   "v=spf1 a:v1.sender.test a:v2.sender.test a:v3.sender.test -all"
		; two SPF records; none at all; a syntax error; an include of nothing
		twospf     TXT   "v=spf1 -all"
		twospf     TXT   "v=spf1 ~all"
		nospf      TXT   "google-site-verification=abc"
		badspf     TXT   "v=spf1 ip4:192.0.2.300 -all"
		incnone    TXT   "v=spf1 include:nospf.sender.test -all"
		; DMARC: reject with strict alignment (and SPF and DKIM for it), none,
		; missing
		reject     TXT   "v=spf1 ip4:192.0.2.0/24 -all"
		_dmarc.reject TXT "v=DMARC1; p=reject; adkim=s; aspf=s; pct=100; rua=mailto:dmarc@sender.test; ruf=mailto:forensic@sender.test"
		s2048._domainkey.reject TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtijSvBv7ES3hgPFUlE3I4KLV0ILM5nC4oYwKWyfQpc9qNWMBAdv66wWfn4eeAMkROH/VJWPs6WBovJ7hKJDD9MyBlCj0lE1eGoIbnv+56EKQQZg+uAs8sTaY5Q9PbXePjhOPWSmxoST/vF7iZJ78WoE+ooiU" "H+gnj65ttEtJ3eBGxCqeKJ7ED/BLmmmjeQhiz54SzA+fBKrw8V5q7ifD9S7sZAtP1yCZWhidcP6lmd4WC/jIZLB93kM7LZP3NRtE5/RXhVUMKBtnJHoZrZ+O4ZnLJXBc2lowdIf310x8mNIC+4egeqC3v9xQn3mcNrOamz98h2bIifritvOqWFefuQIDAQAB"
		none       TXT   "v=spf1 ip4:192.0.2.0/24 -all"
		_dmarc.none TXT  "v=DMARC1; p=none; rua=mailto:dmarc@sender.test"
		nodmarc    TXT   "v=spf1 ip4:192.0.2.0/24 -all"
		; a real test message from 127.0.0.1 (sockmail check --send-to): SPF
		; passes for local, fails for reject above
		local      TXT   "v=spf1 ip4:127.0.0.0/8 -all"
		_dmarc.local TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@sender.test"
		_dmarc.bad TXT   "v=DMARC1; p=maybe"
		; DKIM keys: 1024 and 2048 bit RSA, Ed25519, testing, revoked
		s1024._domainkey TXT "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDeKRcwgz3irGcD35SiWVCLt33UmF4g+bNGswuHQ/uUBchnGVYNShNxSOYOw8bzaOdAODlLjSPdUjFEQrEuEhVOzr7Dc+O+5kWfJeBmdlNpvy8qT0L7lymePLpSKNgdjZo4aVgqdHFOgZtxBRYgSV0O8ttA8pSkpLAAswUFri8scwIDAQAB"
		s2048._domainkey TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtijSvBv7ES3hgPFUlE3I4KLV0ILM5nC4oYwKWyfQpc9qNWMBAdv66wWfn4eeAMkROH/VJWPs6WBovJ7hKJDD9MyBlCj0lE1eGoIbnv+56EKQQZg+uAs8sTaY5Q9PbXePjhOPWSmxoST/vF7iZJ78WoE+ooiU" "H+gnj65ttEtJ3eBGxCqeKJ7ED/BLmmmjeQhiz54SzA+fBKrw8V5q7ifD9S7sZAtP1yCZWhidcP6lmd4WC/jIZLB93kM7LZP3NRtE5/RXhVUMKBtnJHoZrZ+O4ZnLJXBc2lowdIf310x8mNIC+4egeqC3v9xQn3mcNrOamz98h2bIifritvOqWFefuQIDAQAB"
		ed._domainkey    TXT "v=DKIM1; k=ed25519; p=FUrGJXUtPVAgfPiRdVSB0arofZqMpupysjvhLXYz4Po="
		testing._domainkey TXT "v=DKIM1; t=y; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtijSvBv7ES3hgPFUlE3I4KLV0ILM5nC4oYwKWyfQpc9qNWMBAdv66wWfn4eeAMkROH/VJWPs6WBovJ7hKJDD9MyBlCj0lE1eGoIbnv+56EKQQZg+uAs8sTaY5Q9PbXePjhOPWSmxoST/vF7iZJ78WoE+ooiU" "H+gnj65ttEtJ3eBGxCqeKJ7ED/BLmmmjeQhiz54SzA+fBKrw8V5q7ifD9S7sZAtP1yCZWhidcP6lmd4WC/jIZLB93kM7LZP3NRtE5/RXhVUMKBtnJHoZrZ+O4ZnLJXBc2lowdIf310x8mNIC+4egeqC3v9xQn3mcNrOamz98h2bIifritvOqWFefuQIDAQAB"
		revoked._domainkey TXT "v=DKIM1; k=rsa; p="
		; RFC 6186 submission records: STARTTLS on the test Postfix's 2587,
		; implicit TLS on 2465
		srv        TXT   "v=spf1 -all"
		_submission._tcp.srv  SRV 0 1 2587 sub.sender.test.
		_submissions._tcp.srv SRV 0 1 2465 subs.sender.test.
		sub        A     127.0.0.1
		subs       A     127.0.0.1
	EOF
	# dmarcorg.test.: only the organisational domain publishes DMARC, so a
	# subdomain falls back to it and its sp= policy (RFC 7489 6.6.3).
	write_file "$DNS/knot/zones/dmarcorg.test.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN dmarcorg.test.
		$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		_dmarc     TXT   "v=DMARC1; p=reject; sp=quarantine; pct=50"
		mail       TXT   "v=spf1 -all"
	EOF
	write_file "$DNS/unbound/unbound.conf" 644 <<-EOF && DNS_CHANGED=1
		# Generated by .ci/servers.sh: a validating resolver for the test zones.
		server:
		    interface: $HOST
		    port: $UNBOUND_PORT
		    do-ip6: no
		    access-control: 127.0.0.0/8 allow
		    username: ""
		    chroot: ""
		    directory: "$DNS/unbound"
		    pidfile: "$DNS/unbound/unbound.pid"
		    use-syslog: no
		    logfile: ""
		    verbosity: 1
		    val-log-level: 2
		    do-not-query-localhost: no
		    module-config: "validator iterator"
		    trust-anchor-file: "$DNS/unbound/anchor.ds"
		    trust-anchor-signaling: no
		    # Nothing but the test zones exists: no query ever leaves the
		    # machine. Unbound would serve test. and 127.in-addr.arpa. itself
		    # (RFC 6761); here the zones below come from Knot.
		    local-zone: "." refuse
		    local-zone: "test." nodefault
		    local-zone: "127.in-addr.arpa." nodefault
		    local-zone: "check.test." transparent
		    local-zone: "insecure.test." transparent
		    local-zone: "sender.test." transparent
		    local-zone: "dmarcorg.test." transparent
		    local-zone: "127.in-addr.arpa." transparent
		    local-zone: "policy.test." transparent
		    local-zone: "bogus.test." transparent
		    local-zone: "nodnssec.test." transparent
		    local-zone: "localhost." redirect
		    local-data: "localhost. A 127.0.0.1"
		    cache-max-ttl: 60
		    cache-max-negative-ttl: 5
		remote-control:
		    control-enable: no
		stub-zone:
		    name: "check.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "insecure.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "sender.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "dmarcorg.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "127.in-addr.arpa."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "policy.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "bogus.test."
		    stub-addr: $HOST@$KNOT_PORT
		stub-zone:
		    name: "nodnssec.test."
		    stub-addr: $HOST@$KNOT_PORT
	EOF
	return 0
}

# dns_answers PORT NAME TYPE: true if the DNS server on HOST:PORT answers
# NAME TYPE with NOERROR and at least one record.
dns_answers() {
	local out
	out=$(kdig +timeout=2 +retry=0 +short "@$HOST" -p "$1" "$2" "$3" 2>/dev/null) || return 1
	[ -n "$out" ]
}

# dns_validated: true if Unbound answers check.test. MX with the AD bit.
dns_validated() {
	kdig +timeout=2 +retry=0 +adflag "@$HOST" -p "$UNBOUND_PORT" check.test. MX 2>/dev/null |
		grep -q 'Flags:.* ad;'
}

# start_dns: Knot first; once it has signed check.test., the DS of its key
# becomes Unbound's trust anchor.
start_dns() {
	local changed=$DNS_CHANGED
	start_daemon knot knotd "$changed" "$DNS/knot" knotd -c "$DNS/knot/knot.conf"
	local i
	for i in $(seq "$READY_POLLS"); do
		dns_answers "$KNOT_PORT" check.test. DNSKEY && dns_answers "$KNOT_PORT" policy.test. DNSKEY &&
			dns_answers "$KNOT_PORT" bogus.test. DNSKEY && break
		daemon_running knot knotd || { tail -20 "$LOG/knot.log" >&2 || true; die "knot exited (log: $LOG/knot.log)"; }
		sleep 0.2
	done
	[ "$i" -lt "$READY_POLLS" ] || die "knot did not serve a signed check.test. (log: $LOG/knot.log)"
	anchors | write_file "$DNS/unbound/anchor.ds" 644 && changed=1
	[ -s "$DNS/unbound/anchor.ds" ] || die "keymgr gave no DS record for check.test. (log: $LOG/knot.log)"
	start_daemon unbound unbound "$changed" "$DNS/unbound" unbound -d -c "$DNS/unbound/unbound.conf"
}

dns_ready() { dns_answers "$KNOT_PORT" check.test. SOA && dns_validated; }

dns_status() {
	local ok=0
	if daemon_running knot knotd && dns_answers "$KNOT_PORT" check.test. SOA; then
		line knot "$HOST:$KNOT_PORT" "running"
	else
		line knot "-" "stopped"; ok=1
	fi
	if daemon_running unbound unbound && dns_validated; then
		line unbound "$HOST:$UNBOUND_PORT" "running (DNSSEC validated)"
	else
		line unbound "-" "stopped or not validating"; ok=1
	fi
	return $ok
}

# ---------------------------------------------------------------- policies
# sockmail check's policy tests (MTA-STS, TLS-RPT, DANE, DNSSEC failures,
# bad certificates): certificates from the test CA for three more Postfix
# listeners and for an HTTPS server that serves the MTA-STS policies of the
# policy.test. domains; the zones policy.test. (signed, trusted),
# bogus.test. (signed, but Unbound's trust anchor for it is a DS that does
# not match its key, so every answer from it is bogus: SERVFAIL) and
# nodnssec.test. (unsigned, with a TLSA record DANE cannot trust).

# policy_cert NAME DAYS|expired SAN: issue $POLICY_TLS/NAME.pem (and NAME.key,
# and NAME-chain.pem, key then certificate, for Postfix) from the test CA.
# "expired" makes a certificate valid only in January 2020.
policy_cert() {
	local name=$1 days=$2 san=$3 tmp
	tmp=$(mktemp -d "$POLICY_TLS/gen.XXXXXX")
	openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$tmp/key" -out "$tmp/csr" \
		-subj "/O=sockmail tests/CN=${san%%,*}" 2>/dev/null
	mkdir -p "$tmp/db"
	: >"$tmp/db/index"
	openssl rand -hex 16 >"$tmp/db/serial"
	cat >"$tmp/ca.cnf" <<-EOF
		[ca]
		default_ca = test
		[test]
		database = $tmp/db/index
		new_certs_dir = $tmp/db
		serial = $tmp/db/serial
		default_md = sha256
		policy = any
		copy_extensions = none
		x509_extensions = ext
		unique_subject = no
		[any]
		commonName = supplied
		[ext]
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature,keyEncipherment
		extendedKeyUsage = serverAuth
		subjectAltName = $(printf 'DNS:%s,' ${san//,/ } | sed 's/,$//')
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid,issuer
	EOF
	local dates=(-days "$days")
	[ "$days" = expired ] && dates=(-startdate 20200101000000Z -enddate 20200201000000Z)
	openssl ca -batch -notext -config "$tmp/ca.cnf" -cert "$TLS/ca.pem" -keyfile "$TLS/ca.key" \
		"${dates[@]}" -in "$tmp/csr" -out "$tmp/pem" >/dev/null 2>&1 || die "openssl ca failed for $name"
	chmod 600 "$tmp/key"
	chmod 644 "$tmp/pem"
	cat "$tmp/key" "$tmp/pem" >"$tmp/chain"
	chmod 600 "$tmp/chain"
	mv -f "$tmp/key" "$POLICY_TLS/$name.key"
	mv -f "$tmp/pem" "$POLICY_TLS/$name.pem"
	mv -f "$tmp/chain" "$POLICY_TLS/$name-chain.pem"
	rm -rf "$tmp"
}

# make_policy_certs: returns 0 if new certificates were made (the CA
# changed, one is missing, or a valid one nears its end).
make_policy_certs() {
	mkdir -p "$POLICY_TLS"
	chmod 755 "$POLICY_TLS"
	local n fresh=1
	for n in good expired othername mtasts; do
		[ -s "$POLICY_TLS/$n-chain.pem" ] &&
			openssl verify -no_check_time -CAfile "$TLS/ca.pem" "$POLICY_TLS/$n.pem" >/dev/null 2>&1 || fresh=0
	done
	for n in good othername mtasts; do
		openssl x509 -checkend 86400 -noout -in "$POLICY_TLS/$n.pem" >/dev/null 2>&1 || fresh=0
	done
	openssl x509 -noout -ext subjectAltName -in "$POLICY_TLS/good.pem" 2>/dev/null | grep -q mx.nodnssec.test || fresh=0
	openssl x509 -noout -ext subjectAltName -in "$POLICY_TLS/mtasts.pem" 2>/dev/null | grep -q mta-sts.expired.policy.test || fresh=0
	[ "$fresh" = 1 ] && return 1
	say "generating the policy tests' certificates in $POLICY_TLS"
	policy_cert good 825 mx.policy.test,mxbadtlsa.policy.test,mx.nodnssec.test
	policy_cert expired expired mx.policy.test
	policy_cert othername 825 mail.elsewhere.test
	policy_cert mtasts 825 mta-sts.good.policy.test,mta-sts.stsmismatch.policy.test,mta-sts.testing.policy.test,mta-sts.expired.policy.test
	return 0
}

# make_soon_cert: a certificate for localhost from the test CA that expires
# in 4 to 5 days (monitors' "certificate expiring soon" test, port
# $CERT_SOON_PORT); made again when missing, not from the CA, or with 4 days
# or less left. Returns 0 if it was made.
make_soon_cert() {
	mkdir -p "$POLICY_TLS"
	chmod 755 "$POLICY_TLS"
	if [ -s "$POLICY_TLS/soon-chain.pem" ] &&
		openssl verify -CAfile "$TLS/ca.pem" "$POLICY_TLS/soon.pem" >/dev/null 2>&1 &&
		openssl x509 -checkend $((4 * 86400)) -noout -in "$POLICY_TLS/soon.pem" >/dev/null 2>&1; then
		return 1
	fi
	say "generating the certificate that expires in 5 days ($POLICY_TLS/soon.pem)"
	policy_cert soon 5 localhost
	return 0
}

# tlsa_311 PEM: the TLSA "3 1 1" data of a certificate (SHA-256 of its key).
tlsa_311() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}

# write_policy_configs: the policy zones, the MTA-STS policies and the
# HTTPS server's command; sets DNS_CHANGED / MTASTS_CHANGED.
write_policy_configs() {
	mkdir -p "$POLICY/www"
	local good_tlsa
	good_tlsa=$(tlsa_311 "$POLICY_TLS/good.pem")
	write_file "$DNS/knot/zones/policy.test.zone" 644 <<-EOF && DNS_CHANGED=1
		\$ORIGIN policy.test.
		\$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		mx         A     127.0.0.1
		mxbadtlsa  A     127.0.0.1
		; DANE for the Postfix listener with the good certificate (port $POLICY_GOOD_PORT)
		_$POLICY_GOOD_PORT._tcp.mx         TLSA 3 1 1 $good_tlsa
		_$POLICY_GOOD_PORT._tcp.mxbadtlsa  TLSA 3 1 1 $(printf '%064d' 0 | tr 0 a)
		_$POLICY_GOOD_PORT._tcp.mxbadtlsa  TLSA 2 0 1 $(printf '%064d' 0 | tr 0 b)
		; good: MTA-STS enforce matching its MX, TLS-RPT, TLSA matching (check on $POLICY_GOOD_PORT)
		good                   MX    10 mx
		_mta-sts.good          TXT   "v=STSv1; id=20261206T000000"
		mta-sts.good           A     127.0.0.1
		_smtp._tls.good        TXT   "v=TLSRPTv1; rua=mailto:tlsrpt@policy.test,https://report.policy.test/tlsrpt"
		; stsmismatch: MTA-STS enforce, but the policy names another MX
		stsmismatch            MX    10 mx
		_mta-sts.stsmismatch   TXT   "v=STSv1; id=1"
		mta-sts.stsmismatch    A     127.0.0.1
		; badtlsa: TLSA records that match nothing the server presents
		badtlsa                MX    10 mxbadtlsa
		; testing: MTA-STS in testing mode, naming another MX, with a short max_age
		testing                MX    10 mx
		_mta-sts.testing       TXT   "v=STSv1; id=1"
		mta-sts.testing        A     127.0.0.1
		; nopolicy: an MTA-STS record, but the HTTPS server has no certificate for
		; mta-sts.nopolicy (and no policy): the fetch fails
		nopolicy               MX    10 mx
		_mta-sts.nopolicy      TXT   "v=STSv1; id=1"
		mta-sts.nopolicy       A     127.0.0.1
		; expired / othername: checked on the expired and other-name Postfix ports;
		; expired has an MTA-STS enforce policy its certificate fails
		expired                MX    10 mx
		_mta-sts.expired       TXT   "v=STSv1; id=1"
		mta-sts.expired        A     127.0.0.1
		othername              MX    10 mx
	EOF
	write_file "$DNS/knot/zones/bogus.test.zone" 644 <<-'EOF' && DNS_CHANGED=1
		$ORIGIN bogus.test.
		$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		@          MX    10 mx
		mx         A     127.0.0.1
	EOF
	# nodnssec.test.: unsigned, so its (matching) TLSA record comes without
	# the AD bit and DANE cannot use it.
	write_file "$DNS/knot/zones/nodnssec.test.zone" 644 <<-EOF && DNS_CHANGED=1
		\$ORIGIN nodnssec.test.
		\$TTL 60
		@          SOA   ns hostmaster 1 3600 600 86400 60
		@          NS    ns
		ns         A     127.0.0.1
		@          MX    10 mx
		mx         A     127.0.0.1
		_$POLICY_GOOD_PORT._tcp.mx  TLSA 3 1 1 $good_tlsa
	EOF
	printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.policy.test\r\nmax_age: 604800\r\n' |
		write_file "$POLICY/www/mta-sts.good.policy.test.txt" 644 || true
	printf 'version: STSv1\r\nmode: enforce\r\nmx: mail.elsewhere.test\r\nmx: *.elsewhere.test\r\nmax_age: 604800\r\n' |
		write_file "$POLICY/www/mta-sts.stsmismatch.policy.test.txt" 644 || true
	printf 'version: STSv1\r\nmode: testing\r\nmx: *.elsewhere.test\r\nmax_age: 3600\r\n' |
		write_file "$POLICY/www/mta-sts.testing.policy.test.txt" 644 || true
	printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.policy.test\r\nmax_age: 604800\r\n' |
		write_file "$POLICY/www/mta-sts.expired.policy.test.txt" 644 || true
	MTASTS_CMD=("$PY" "$POLICY/mta_sts_server.py" "$HOST" "$MTASTS_PORT" "$POLICY_TLS/mtasts-chain.pem" "$POLICY/www")
	{
		printf '%q ' "${MTASTS_CMD[@]}"
		echo
		cat "$HERE/mta_sts_server.py" "$POLICY_TLS/mtasts.pem"
	} | write_file "$POLICY/fingerprint" 644 && MTASTS_CHANGED=1
	cp "$HERE/mta_sts_server.py" "$POLICY/mta_sts_server.py"
	return 0
}

# mtasts_ok: the HTTPS server serves good.policy.test's policy under our CA.
mtasts_ok() {
	curl -fsS -o /dev/null --max-time 5 --cacert "$TLS/ca.pem" \
		--resolve "mta-sts.good.policy.test:$MTASTS_PORT:$HOST" \
		"https://mta-sts.good.policy.test:$MTASTS_PORT/.well-known/mta-sts.txt" 2>/dev/null
}

# anchors: Unbound's trust anchors: the DS of check.test. and policy.test.,
# and for bogus.test. a DS whose digest is changed in its last digit.
anchors() {
	keymgr -c "$DNS/knot/knot.conf" check.test. ds 2>>"$LOG/knot.log" | grep ' DS '
	keymgr -c "$DNS/knot/knot.conf" policy.test. ds 2>>"$LOG/knot.log" | grep ' DS '
	keymgr -c "$DNS/knot/knot.conf" bogus.test. ds 2>>"$LOG/knot.log" | grep ' DS ' |
		awk '{ d = $NF; l = substr(d, length(d)); $NF = substr(d, 1, length(d) - 1) (l == "0" ? "1" : "0"); print }'
}

write_env() {
	local chromium
	chromium=$(command -v chromium || true)
	write_file "$ENVFILE" 644 <<-EOF || true
		# Written by .ci/servers.sh up; read by sockmail/internal/testenv.
		STATE_DIR=$STATE
		TLS_CA_FILE=$TLS/ca.pem
		TLS_SERVER_CERT=$TLS/server.pem
		TLS_SERVER_KEY=$TLS/server.key
		TLS_SERVER_NAME=localhost
		POSTFIX_HOST=$HOST
		POSTFIX_SMTP_PORT=$SMTP_PORT
		POSTFIX_SMTPS_PORT=$SMTPS_PORT
		POSTFIX_SUBMISSION_PORT=$SUBMISSION_PORT
		POSTFIX_DOMAIN=$DOMAIN
		POSTFIX_USER=$TEST_USER
		POSTFIX_PASSWORD=$TEST_PASSWORD
		POSTFIX_MAILDIR=$PF_MAILDIR
		POSTFIX_MESSAGE_SIZE_LIMIT=$MESSAGE_SIZE_LIMIT
		POSTFIX_LOG=$LOG/postfix.log
		POSTFIX_MASTER_PID_FILE=$PF_QUEUE/pid/master.pid
		AIOSMTPD_HOST=$HOST
		AIOSMTPD_PORT=$AIOSMTPD_PORT
		AIOSMTPD_MAILDIR=$AIO_MAILDIR
		AIOSMTPD_MESSAGE_SIZE_LIMIT=$MESSAGE_SIZE_LIMIT
		AIOSMTPD_LOG=$LOG/aiosmtpd.log
		HARAKA_VERSION=$HARAKA_VERSION
		HARAKA_HOST=$HOST
		HARAKA_PORT=$HARAKA_PORT
		HARAKA_SMTPS_PORT=$HARAKA_SMTPS_PORT
		HARAKA_MAILDIR=$HARAKA_MAILDIR
		HARAKA_LOG=$LOG/haraka.log
		MAILPIT_VERSION=$MAILPIT_VERSION
		MAILPIT_HOST=$HOST
		MAILPIT_PORT=$MAILPIT_PORT
		MAILPIT_API=http://$HOST:$MAILPIT_HTTP_PORT
		MAILPIT_TLS_PORT=$MAILPIT_TLS_PORT
		MAILPIT_TLS_API=http://$HOST:$MAILPIT_TLS_HTTP_PORT
		MAILPIT_LOG=$LOG/mailpit.log
		INBUCKET_VERSION=$INBUCKET_VERSION
		INBUCKET_HOST=$HOST
		INBUCKET_PORT=$INBUCKET_PORT
		INBUCKET_API=http://$HOST:$INBUCKET_HTTP_PORT
		INBUCKET_TLS_PORT=$INBUCKET_TLS_PORT
		INBUCKET_TLS_API=http://$HOST:$INBUCKET_TLS_HTTP_PORT
		INBUCKET_LOG=$LOG/inbucket.log
		RCPT_REJECT_550=reject550@$DOMAIN
		RCPT_TEMPFAIL_451=temp451@$DOMAIN
		RCPT_FULL_452=full452@$DOMAIN
		POSTGRES_DSN=postgres://postgres@$HOST:5432/test?sslmode=disable
		CHROMIUM=$chromium
		AXE_VERSION=$AXE_VERSION
		AXE_SCRIPT=$AXE_SCRIPT
		DNS_RESOLVER=$HOST:$UNBOUND_PORT
		DNS_AUTHORITATIVE=$HOST:$KNOT_PORT
		DNS_SIGNED_ZONE=check.test
		DNS_INSECURE_ZONE=insecure.test
		DNS_LOG=$LOG/unbound.log
		POLICY_ZONE=policy.test
		POLICY_BOGUS_ZONE=bogus.test
		POLICY_UNSIGNED_ZONE=nodnssec.test
		POLICY_GOOD_PORT=$POLICY_GOOD_PORT
		POLICY_EXPIRED_PORT=$POLICY_EXPIRED_PORT
		POLICY_OTHERNAME_PORT=$POLICY_OTHERNAME_PORT
		MTASTS_PORT=$MTASTS_PORT
		MTASTS_CERT=$POLICY_TLS/mtasts.pem
		MTASTS_KEY=$POLICY_TLS/mtasts.key
		CERT_SOON_PORT=$CERT_SOON_PORT
		CERT_SOON_NAME=localhost
		IMAP_HOST=$HOST
		IMAP_PORT=$IMAP_PORT
		IMAPS_PORT=$IMAPS_PORT
		IMAP_USER=$IMAP_USER
		IMAP_PASSWORD=$IMAP_PASSWORD
		IMAP_MAILDIR=$IMAP_MAILDIR
	EOF
}

up() {
	mkdir -p "$STATE"
	install_packages
	install_servers
	PF_CHANGED=0 DOVE_CHANGED=0 AIO_CHANGED=0 TOUCHED=0
	HARAKA_CHANGED=0 MAILPIT_CHANGED=0 INBUCKET_CHANGED=0
	if make_certs; then PF_CHANGED=1 AIO_CHANGED=1 HARAKA_CHANGED=1 MAILPIT_CHANGED=1 INBUCKET_CHANGED=1 DOVE_CHANGED=1; fi
	if make_soon_cert; then PF_CHANGED=1; fi
	MTASTS_CHANGED=0
	if make_policy_certs; then PF_CHANGED=1 MTASTS_CHANGED=1; fi
	write_configs
	write_peer_configs
	DNS_CHANGED=0
	write_dns_configs
	write_policy_configs
	# Messages older than a day are of no use to anyone.
	find "$MAILBASE" -type f -mtime +1 -delete 2>/dev/null || true
	check_ports_free
	prepare_postfix
	start_dovecot
	start_postfix
	start_aiosmtpd
	start_peers
	start_dns
	start_postgres
	wait_ready
	write_env
	say "up: postfix $HOST:$SMTP_PORT/$SMTPS_PORT/$SUBMISSION_PORT, aiosmtpd $HOST:$AIOSMTPD_PORT," \
		"haraka $HOST:$HARAKA_PORT/$HARAKA_SMTPS_PORT, mailpit $HOST:$MAILPIT_PORT/$MAILPIT_TLS_PORT," \
		"inbucket $HOST:$INBUCKET_PORT/$INBUCKET_TLS_PORT, knot $HOST:$KNOT_PORT, unbound $HOST:$UNBOUND_PORT," \
		"policy postfix $HOST:$POLICY_GOOD_PORT/$POLICY_EXPIRED_PORT/$POLICY_OTHERNAME_PORT, mta-sts $HOST:$MTASTS_PORT," \
		"cert-soon postfix $HOST:$CERT_SOON_PORT, dovecot imap $HOST:$IMAP_PORT/$IMAPS_PORT;" \
		"env in $ENVFILE"
}

down() {
	rm -f "$ENVFILE"
	if [ -f "$PF_CONF/main.cf" ] && command -v postfix >/dev/null && postfix_running; then
		say "stopping postfix"
		postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
	fi
	if dovecot_running; then
		say "stopping dovecot"
		kill "$(cat "$DOVE/run/master.pid")" 2>/dev/null || true

		for _ in $(seq 50); do dovecot_running || break; sleep 0.1; done
	fi
	if aiosmtpd_running; then
		say "stopping aiosmtpd"
		stop_aiosmtpd
	fi
	local peer
	for peer in "${PEERS[@]}"; do
		stop_daemon "${peer%%:*}" "${peer#*:}"
	done
	return 0
}

# peer_status NAME WORD PLAIN_PORT TLS_PORT API_URL: one line per port and
# for the API (empty arguments are skipped); false if any does not answer.
peer_status() {
	local name=$1 word=$2 plain=$3 tls=$4 api=$5 ok=0
	if ! daemon_running "$name" "$word"; then
		line "$name" "-" "stopped"
		return 1
	fi
	if [ -n "$plain" ]; then
		if greets "$plain"; then line "$name" "$HOST:$plain" "running"; else line "$name" "$HOST:$plain" "NOT ANSWERING"; ok=1; fi
	fi
	if [ -n "$tls" ]; then
		if tls_greets "$tls"; then line "$name" "$HOST:$tls" "running (TLS)"; else line "$name" "$HOST:$tls" "NOT ANSWERING"; ok=1; fi
	fi
	if [ -n "$api" ]; then
		if http_ok "$api"; then line "$name" "${api%%/api/*}" "REST API"; else line "$name" "${api%%/api/*}" "API NOT ANSWERING"; ok=1; fi
	fi
	return $ok
}

line() { printf '%-12s %-24s %s\n' "$1" "$2" "$3"; }

status() {
	local ok=0
	if [ -f "$PF_CONF/main.cf" ] && command -v postfix >/dev/null && postfix_running; then
		local p
		for p in $SMTP_PORT $SUBMISSION_PORT; do
			if greets "$p"; then line postfix "$HOST:$p" "running"; else line postfix "$HOST:$p" "NOT ANSWERING"; ok=1; fi
		done
		if tls_greets "$SMTPS_PORT"; then line postfix "$HOST:$SMTPS_PORT" "running (TLS)"; else line postfix "$HOST:$SMTPS_PORT" "NOT ANSWERING"; ok=1; fi
	else
		line postfix "-" "stopped"; ok=1
	fi
	if dovecot_running && [ -S "$PF_QUEUE/private/auth" ]; then line dovecot "private/auth" "running"; else line dovecot "-" "stopped"; ok=1; fi
	if imap_greets "$IMAP_PORT"; then line dovecot "$HOST:$IMAP_PORT" "running (IMAP)"; else line dovecot "$HOST:$IMAP_PORT" "NOT ANSWERING"; ok=1; fi
	if imaps_greets "$IMAPS_PORT"; then line dovecot "$HOST:$IMAPS_PORT" "running (IMAP, TLS)"; else line dovecot "$HOST:$IMAPS_PORT" "NOT ANSWERING"; ok=1; fi
	if aiosmtpd_running && greets "$AIOSMTPD_PORT"; then line aiosmtpd "$HOST:$AIOSMTPD_PORT" "running"; else line aiosmtpd "-" "stopped"; ok=1; fi
	peer_status haraka haraka "$HARAKA_PORT" "$HARAKA_SMTPS_PORT" "" || ok=1
	peer_status mailpit mailpit "$MAILPIT_PORT" "" "http://$HOST:$MAILPIT_HTTP_PORT/api/v1/messages?limit=1" || ok=1
	peer_status mailpit-tls mailpit "" "$MAILPIT_TLS_PORT" "http://$HOST:$MAILPIT_TLS_HTTP_PORT/api/v1/messages?limit=1" || ok=1
	peer_status inbucket inbucket "$INBUCKET_PORT" "" "http://$HOST:$INBUCKET_HTTP_PORT/api/v1/mailbox/ready-check" || ok=1
	peer_status inbucket-tls inbucket "" "$INBUCKET_TLS_PORT" "http://$HOST:$INBUCKET_TLS_HTTP_PORT/api/v1/mailbox/ready-check" || ok=1
	dns_status || ok=1
	local p
	for p in $POLICY_GOOD_PORT $POLICY_EXPIRED_PORT $POLICY_OTHERNAME_PORT; do
		if greets "$p"; then line postfix "$HOST:$p" "running (policy tests)"; else line postfix "$HOST:$p" "NOT ANSWERING"; ok=1; fi
	done
	if greets "$CERT_SOON_PORT"; then line postfix "$HOST:$CERT_SOON_PORT" "running (certificate ends in 5 days)"; else line postfix "$HOST:$CERT_SOON_PORT" "NOT ANSWERING"; ok=1; fi
	if daemon_running mtasts mta_sts_server && mtasts_ok; then line mta-sts "$HOST:$MTASTS_PORT" "running (HTTPS)"; else line mta-sts "-" "stopped"; ok=1; fi
	if command -v pg_isready >/dev/null && pg_isready -q -h "$HOST" -p 5432; then line postgres "$HOST:5432" "running"; else line postgres "-" "not answering"; ok=1; fi
	if command -v chromium >/dev/null; then line chromium "$(command -v chromium)" "installed"; else line chromium "-" "missing"; ok=1; fi
	if [ -s "$AXE_SCRIPT" ]; then line axe-core "$AXE_SCRIPT" "installed"; else line axe-core "-" "missing (run: make testservers)"; ok=1; fi
	if [ -f "$ENVFILE" ]; then line env "$ENVFILE" ""; else line env "-" "missing (run: make testservers)"; ok=1; fi
	return $ok
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status   (state dir: $STATE)" >&2
	exit 2
	;;
esac
