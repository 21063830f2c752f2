package webform

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// An address example used in every hint, so that the messages read alike.
const exampleAddr = "bob@example.org"

// addressError explains why an address field does not parse: it names the
// field (title, like "To"), the entry at fault among several, what is
// wrong with it and how to write it. list is the whole field as typed.
func addressError(title, list string) string {
	entries := splitAddressList(list)
	var nonEmpty []string
	for _, e := range entries {
		if strings.TrimSpace(e) != "" {
			nonEmpty = append(nonEmpty, strings.TrimSpace(e))
		}
	}
	for i, e := range nonEmpty {
		problem := addressProblem(title, e)
		if problem == "" {
			continue
		}
		where := ""
		if len(nonEmpty) > 1 {
			where = " (address " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(nonEmpty)) + ")"
		}
		return fmt.Sprintf("%s: %s%s %s", title, quote(e), where, problem)
	}
	// Every entry is fine on its own: the list as a whole is not (a
	// quote or bracket that spans commas, a group).
	if _, err := message.ParseAddressList(title, list); err != nil {
		return title + ": the list cannot be read (" + reason(err) + "). Separate addresses with commas, and write a name with its address as Bob Smith <" + exampleAddr + ">."
	}
	return ""
}

// addressProblem says what is wrong with one address as typed (entry),
// starting with a verb ("is not an email address: ..."), or returns ""
// when it is a good address.
func addressProblem(title, entry string) string {
	const notAddr = "is not an email address: "
	spec := entry
	if lt := strings.IndexByte(entry, '<'); lt >= 0 {
		gt := strings.LastIndexByte(entry, '>')
		switch {
		case gt < lt:
			return notAddr + `it has "<" but no closing ">". Write a name and an address as Bob Smith <` + exampleAddr + ">."
		case strings.TrimSpace(entry[gt+1:]) != "" && !strings.HasPrefix(strings.TrimSpace(entry[gt+1:]), "("):
			return notAddr + `there is text after ">". Write a name and an address as Bob Smith <` + exampleAddr + ">."
		}
		spec = strings.TrimSpace(entry[lt+1 : gt])
	} else if strings.IndexByte(entry, '>') >= 0 {
		return notAddr + `it has ">" but no opening "<". Write a name and an address as Bob Smith <` + exampleAddr + ">."
	}
	if strings.ContainsAny(entry, "\r\n") {
		return "holds a line break. Write each address on one line, separated by commas."
	}
	if strings.Contains(spec, ";") {
		return notAddr + `it has ";". Separate addresses with commas, as in ` + exampleAddr + ", carol@example.org."
	}
	if strings.ContainsAny(spec, " \t") {
		words := strings.Fields(spec)
		last := words[len(words)-1]
		if strings.Count(last, "@") == 1 && !strings.ContainsRune(last, '"') && !strings.ContainsRune(strings.Join(words[:len(words)-1], " "), '@') {
			return "is a name and an address without angle brackets. Write it as " + strings.Join(words[:len(words)-1], " ") + " <" + last + ">."
		}
		if strings.Count(spec, "@") == 1 {
			return notAddr + "it has a space. An address has none; write it as " + exampleAddr + "."
		}
		if strings.Count(spec, "@") > 1 {
			return notAddr + "it holds several addresses. Separate addresses with commas, as in " + exampleAddr + ", carol@example.org."
		}
	}
	at := strings.Count(spec, "@")
	local, domain, _ := strings.Cut(spec, "@")
	switch {
	case at == 0:
		return notAddr + `it has no "@". Write it as name@domain, e.g. ` + exampleAddr + "."
	case at > 1:
		return notAddr + `it has ` + strconv.Itoa(at) + ` "@". An address has exactly one, as in ` + exampleAddr + "; separate several addresses with commas."
	case local == "":
		return notAddr + `nothing comes before the "@". Write the mailbox name before it, as in ` + exampleAddr + "."
	case domain == "":
		return notAddr + `nothing comes after the "@". Write the domain after it, as in ` + exampleAddr + "."
	case strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, ".."):
		return notAddr + `the domain "` + domain + `" has an empty part between dots. Write it as example.org.`
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, ".."):
		return notAddr + `the part before "@" starts or ends with a dot, or has two dots in a row. Write it as bob.smith@example.org.`
	case strings.HasPrefix(local, `"`):
		return notAddr + "quoted mailbox names are not supported. Write a plain one, as in bob.smith@example.org."
	}
	a, err := message.ParseAddress(title, entry)
	if err != nil {
		return notAddr + reason(err) + ". Write it as name@domain, e.g. " + exampleAddr + "."
	}
	if err := smtp.CheckAddress(a.Address); err != nil {
		return notAddr + strings.TrimPrefix(err.Error(), "address "+strconv.Quote(a.Address)+" ") + "."
	}
	return ""
}

// reason is the cause of a message or net/mail error without the package
// and field prefixes: `message: To: address "x@": empty domain` gives
// "empty domain".
func reason(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "message: ")
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return strings.TrimPrefix(s, "mail: ")
}

// quote shows what was typed, in double quotes, cut to a readable length;
// control characters (a line break) are shown escaped, as \r and \n.
func quote(s string) string {
	if hasControl(s) || strings.ContainsAny(s, "\t") {
		s = strings.Trim(strconv.Quote(s), `"`)
	}
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return `"` + s + `"`
}

// splitAddressList splits an address list at the commas that separate
// addresses: not those inside a quoted display name, angle brackets or a
// comment.
func splitAddressList(s string) []string {
	var out []string
	depthAngle, depthComment, quoted, escaped := 0, 0, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && (quoted || depthComment > 0):
			escaped = true
		case c == '"' && depthComment == 0:
			quoted = !quoted
		case quoted:
		case c == '(':
			depthComment++
		case c == ')' && depthComment > 0:
			depthComment--
		case depthComment > 0:
		case c == '<':
			depthAngle++
		case c == '>' && depthAngle > 0:
			depthAngle--
		case c == ',' && depthAngle == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseAddresses parses an address field (title like "To") and checks
// every address for the SMTP envelope; the error explains the first bad
// entry.
func parseAddresses(title, v string) ([]*mail.Address, error) {
	l, err := message.ParseAddressList(title, v)
	if err == nil {
		for _, a := range l {
			if smtp.CheckAddress(a.Address) != nil {
				err = errorString("bad")
				break
			}
		}
	}
	if err != nil {
		msg := addressError(title, v)
		if msg == "" {
			msg = title + ": " + reason(err) + "."
		}
		return nil, errorString(msg)
	}
	return l, nil
}
