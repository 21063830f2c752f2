// queue_maildir: a Haraka queue plugin for sockmail's interoperability tests.
//
// .ci/servers.sh copies it into the test Haraka's config/plugins/ folder.
// Each accepted message is written into the Maildir named by the one line
// of config/queue_maildir (tmp/ first, then renamed into new/), the same
// shape as .ci/aiosmtpd_sink.py: a few X-Sink-* lines describing the
// envelope, then the message exactly as Haraka holds it (CRLF line ends,
// dot-unstuffed, with the Received header Haraka adds on top). Nothing
// is relayed: authenticated senders (hook_queue_outbound) land in the same
// Maildir.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

let counter = 0

// address returns an envelope address as text (a method in older releases
// of Haraka's address class, a property in newer ones).
const address = (a) => (typeof a.address === 'function' ? a.address() : a.address)

exports.register = function () {
    this.maildir = this.config.get('queue_maildir')
    if (!this.maildir) throw new Error('queue_maildir: config/queue_maildir names no Maildir')
    for (const sub of ['tmp', 'new', 'cur']) fs.mkdirSync(path.join(this.maildir, sub), { recursive: true })
}

// store writes the transaction into the Maildir and answers OK once the
// file is complete, so that the 250 after DATA means "on disk".
function store(next, connection) {
    const txn = connection?.transaction
    if (!txn) return next()
    counter += 1
    const name = `${Date.now()}.P${process.pid}Q${counter}.${txn.uuid}.${os.hostname().replace(/[/:]/g, '_')}`
    const tmp = path.join(this.maildir, 'tmp', name)
    const lines = [
        `X-Sink-Peer: ${connection.remote.ip}:${connection.remote.port}`,
        `X-Sink-Helo: ${connection.hello?.host ?? ''}`,
        `X-Sink-TLS: ${connection.tls.enabled ? 'yes' : 'no'}`,
        `X-Sink-Auth: ${connection.notes?.auth_user ?? ''}`,
        `X-Sink-Mail-From: <${address(txn.mail_from)}>`,
        ...txn.rcpt_to.map((r) => `X-Sink-Rcpt-To: <${address(r)}>`),
    ]
    const ws = fs.createWriteStream(tmp)
    const fail = (err) => {
        connection.logerror(this, `cannot store ${tmp}: ${err.message}`)
        next(DENYSOFT, 'queue_maildir: cannot store the message')
    }
    ws.once('error', fail)
    ws.once('close', () => {
        fs.rename(tmp, path.join(this.maildir, 'new', name), (err) => {
            if (err) return fail(err)
            next(OK, `queued as ${name}`)
        })
    })
    ws.write(`${lines.join('\r\n')}\r\n`)
    txn.message_stream.pipe(ws)
}

exports.hook_queue = store
exports.hook_queue_outbound = store
