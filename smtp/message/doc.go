// Package message composes Internet messages for sockmail's SMTP client and
// streams them to the wire.
//
// It implements:
//
//   - RFC 5322, Internet Message Format: header fields, folding (lines of at
//     most 78 characters where possible, never more than 998), address
//     lists, Date and Message-ID;
//   - RFC 2045, 2046, 2047, 2048 and 2049, MIME: multipart/mixed,
//     multipart/alternative and multipart/related bodies, the 7bit,
//     quoted-printable and base64 transfer encodings, and RFC 2047
//     encoded-words for non-ASCII display names and unstructured text;
//   - RFC 2231, MIME parameter value and encoded word extensions: non-ASCII
//     and long attachment file names, with continuations;
//   - RFC 2392, Content-ID and Message-ID URLs: inline parts referenced from
//     HTML by "cid:";
//   - RFC 6532, Internationalized Email Headers: addresses whose local part
//     (or a domain that has no IDNA A-label form) is not ASCII are written
//     in UTF-8, and [Message.NeedsSMTPUTF8] tells the client to ask for the
//     RFC 6531 SMTPUTF8 extension;
//   - RFC 6376, DomainKeys Identified Mail: [SignDKIM] adds a
//     relaxed/relaxed rsa-sha256 or ed25519-sha256 signature.
//
// A [Message] is built from exported fields, made stable by
// [Message.Prepare] (Date, Message-ID and MIME boundaries are fixed once) and
// written by [Message.WriteTo], which reads attachments from their source
// while writing, so memory does not grow with their size. [Message.Size]
// gives the exact size of the output without reading attachments. A [Raw]
// sends a complete message supplied by the user, with line endings
// normalised to CRLF. [Message], [Raw] and the result of [SignDKIM] all
// satisfy [Content], which is what the SMTP client needs to send a message.
//
// The output never contains 8-bit body data: text is sent as 7bit,
// quoted-printable or base64, so the client never needs BODY=8BITMIME for a
// [Message]. Lines of the output always end in CRLF. Dot-stuffing for DATA
// is the SMTP client's job and is not done here.
package message
