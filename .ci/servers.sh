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
DOMAIN=example.test
TEST_USER=tester@example.test
TEST_PASSWORD=s3cret-Pa55
MESSAGE_SIZE_LIMIT=62914560   # 60 MiB
PY=/usr/bin/python3           # Debian's python: has the aiosmtpd module
PACKAGES=(postfix dovecot-core python3-aiosmtpd python3-dkim python3-nacl swaks libnet-ssleay-perl libio-socket-ssl-perl openssl chromium ca-certificates)

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
		"$PF_MAILDIR"/{new,cur,tmp} "$AIO_MAILDIR"/{new,cur,tmp}
	chmod 755 "$STATE" "$PF" "$PF_CONF" "$MAILBASE" "$LOG"
	chown postfix:postfix "$PF_DATA"
	chown "$nobody_uid:$nobody_gid" "$PF_MAILDIR" "$PF_MAILDIR"/{new,cur,tmp}

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
		# every address at $DOMAIN -> the Maildir $PF_MAILDIR/
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
	EOF
	chgrp dovecot "$DOVE/users"

	write_file "$DOVE/dovecot.conf" 644 <<-EOF && DOVE_CHANGED=1
		# Generated by .ci/servers.sh: Dovecot only as SASL server for the test Postfix.
		instance_name = sockmail-test-dovecot
		base_dir = $DOVE/run
		state_dir = $DOVE/state
		log_path = $LOG/dovecot.log
		protocols = none
		ssl = no
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
	postfix_running || ports+=("$SMTP_PORT" "$SMTPS_PORT" "$SUBMISSION_PORT")
	aiosmtpd_running || ports+=("$AIOSMTPD_PORT")
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

# wait_ready: after a start or reload, wait until each server greets (60 s
# at most: a loaded machine forks slowly); when nothing was touched, a TCP
# connect to each port is enough.
wait_ready() {
	if [ "$TOUCHED" = 0 ] && port_open "$SMTP_PORT" && port_open "$SUBMISSION_PORT" &&
		port_open "$SMTPS_PORT" && port_open "$AIOSMTPD_PORT" && [ -S "$PF_QUEUE/private/auth" ]; then
		return 0
	fi
	local deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		if greets "$SMTP_PORT" && greets "$SUBMISSION_PORT" && greets "$AIOSMTPD_PORT" &&
			tls_greets "$SMTPS_PORT" && [ -S "$PF_QUEUE/private/auth" ]; then
			return 0
		fi
		sleep 0.2
	done
	status >&2 || true
	die "servers did not all answer within 60 s; logs in $LOG"
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
		AIOSMTPD_HOST=$HOST
		AIOSMTPD_PORT=$AIOSMTPD_PORT
		AIOSMTPD_MAILDIR=$AIO_MAILDIR
		AIOSMTPD_MESSAGE_SIZE_LIMIT=$MESSAGE_SIZE_LIMIT
		AIOSMTPD_LOG=$LOG/aiosmtpd.log
		RCPT_REJECT_550=reject550@$DOMAIN
		RCPT_TEMPFAIL_451=temp451@$DOMAIN
		RCPT_FULL_452=full452@$DOMAIN
		POSTGRES_DSN=postgres://postgres@$HOST:5432/test?sslmode=disable
		CHROMIUM=$chromium
	EOF
}

up() {
	mkdir -p "$STATE"
	install_packages
	PF_CHANGED=0 DOVE_CHANGED=0 AIO_CHANGED=0 TOUCHED=0
	if make_certs; then PF_CHANGED=1 AIO_CHANGED=1; fi
	write_configs
	# Messages older than a day are of no use to anyone.
	find "$MAILBASE" -type f -mtime +1 -delete 2>/dev/null || true
	check_ports_free
	prepare_postfix
	start_dovecot
	start_postfix
	start_aiosmtpd
	start_postgres
	wait_ready
	write_env
	say "up: postfix $HOST:$SMTP_PORT/$SMTPS_PORT/$SUBMISSION_PORT, aiosmtpd $HOST:$AIOSMTPD_PORT; env in $ENVFILE"
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
	return 0
}

status() {
	local ok=0
	line() { printf '%-10s %-24s %s\n' "$1" "$2" "$3"; }
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
	if aiosmtpd_running && greets "$AIOSMTPD_PORT"; then line aiosmtpd "$HOST:$AIOSMTPD_PORT" "running"; else line aiosmtpd "-" "stopped"; ok=1; fi
	if command -v pg_isready >/dev/null && pg_isready -q -h "$HOST" -p 5432; then line postgres "$HOST:5432" "running"; else line postgres "-" "not answering"; ok=1; fi
	if command -v chromium >/dev/null; then line chromium "$(command -v chromium)" "installed"; else line chromium "-" "missing"; ok=1; fi
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
