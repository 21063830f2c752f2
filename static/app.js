// sockmail: streams a running send's transcript into the result page with
// server-sent events. The server sends the rounds that changed as HTML
// rendered by the same component as the finished page, and this script
// only swaps them in: the live and the finished view cannot disagree.
// Without JavaScript the page reloads itself until the send ends (a
// <noscript> refresh), so this file is an improvement only.
"use strict";
(function () {
	var box = document.getElementById("transcript");
	if (!box || box.dataset.running !== "true" || !window.EventSource) {
		return;
	}
	var id = box.dataset.sendId;
	var count = parseInt(box.dataset.count || "0", 10);

	// swap replaces the rounds from msg.from on with the server's HTML.
	function swap(msg) {
		var rounds = box.querySelectorAll("section.round");
		Array.prototype.forEach.call(rounds, function (r) {
			if (parseInt(r.dataset.round, 10) >= msg.from) { r.remove(); }
		});
		var tpl = document.createElement("template");
		tpl.innerHTML = msg.html; // rendered and escaped by the server (templ)
		// Lines that came by the stream, not with the page.
		Array.prototype.forEach.call(tpl.content.querySelectorAll('li[data-testid="event"]'), function (li) {
			li.dataset.live = "true";
		});
		box.appendChild(tpl.content);
		count = msg.count;
		box.dataset.count = String(count);
	}

	// Once the Cancel button is pressed, its answer (a redirect to this
	// page, as the send ended) replaces the page: no reload of our own.
	var leaving = false;
	var cancel = document.querySelector('[data-testid="cancel-form"]');
	if (cancel) {
		cancel.addEventListener("submit", function () {
			leaving = true;
			var b = cancel.querySelector("button");
			if (b) { b.disabled = true; b.textContent = "Cancelling…"; }
		});
	}

	var es = new EventSource("/sends/" + encodeURIComponent(id) + "/events?after=" + count);
	es.addEventListener("rounds", function (msg) {
		var m = JSON.parse(msg.data);
		if (m.count > count) { swap(m); }
	});
	es.addEventListener("done", function () {
		es.close();
		// The finished page has the per-recipient results, the
		// explanation and the downloads: load it.
		if (!leaving) { window.location.reload(); }
	});
	es.onerror = function () {
		// The stream ended or broke: show the page as the server has it.
		es.close();
		if (!leaving) { window.setTimeout(function () { window.location.reload(); }, 1000); }
	};
})();

// sockmail: copy buttons for the contact form embed snippets. The buttons
// are hidden without JavaScript (the snippet can be selected by hand).
(function () {
	var buttons = document.querySelectorAll("button.copy[data-copy]");
	if (!buttons.length || !navigator.clipboard) {
		return;
	}
	Array.prototype.forEach.call(buttons, function (b) {
		var src = document.getElementById(b.getAttribute("data-copy"));
		if (!src) { return; }
		b.hidden = false;
		b.addEventListener("click", function () {
			navigator.clipboard.writeText(src.textContent).then(function () {
				b.textContent = "Copied";
				window.setTimeout(function () { b.textContent = "Copy"; }, 2000);
			}, function () {
				b.textContent = "Copy failed: select the text";
			});
		});
	});
})();

// sockmail: the compose form checks the chosen attachments against the
// server's limits (data-max-bytes, data-max-files on the file input)
// before sending, so that an over-limit upload is stopped here with a
// clear message instead of travelling to the server. The numbers are
// formatted as the server formats them (views.Bytes), so the hint, this
// message and the server's error state the same limit. Without
// JavaScript the server checks the same limits and shows the form again.
(function () {
	var input = document.querySelector('input[type=file][data-max-bytes]');
	var box = document.getElementById("err-attachments-js");
	if (!input || !box || !input.form) {
		return;
	}
	var maxBytes = parseInt(input.dataset.maxBytes, 10);
	var maxFiles = parseInt(input.dataset.maxFiles || "0", 10);
	var label = input.dataset.maxLabel;
	var described = input.getAttribute("aria-describedby") || "";
	var serverInvalid = input.getAttribute("aria-invalid") === "true";

	function bytes(n) {
		if (n >= 1048576) { return (n / 1048576).toFixed(1) + " MiB"; }
		if (n >= 1024) { return (n / 1024).toFixed(1) + " KiB"; }
		return n + " B";
	}

	// problem returns what is wrong with the chosen files, or "".
	function problem() {
		var files = input.files || [];
		var total = 0;
		for (var i = 0; i < files.length; i++) { total += files[i].size; }
		if (total > maxBytes) {
			var size = bytes(total), max = label;
			if (size === max) { size = total + " bytes"; max = maxBytes + " bytes"; }
			var what = files.length === 1 ? "the file chosen is " : "the " + files.length + " files chosen add up to ";
			return "Attachments: " + what + size + "; together they may be at most " + max +
				". Choose fewer or smaller files (together at most " + label + ").";
		}
		if (maxFiles > 0 && files.length > maxFiles) {
			return "Attachments: " + files.length + " files are chosen; at most " + maxFiles +
				" can be attached. Choose at most " + maxFiles + " files (together at most " + label + ").";
		}
		return "";
	}

	function show(msg) {
		box.textContent = msg;
		box.hidden = msg === "";
		var ids = described.split(" ").filter(function (id) { return id && id !== box.id; });
		if (msg !== "") { ids.push(box.id); }
		input.setAttribute("aria-describedby", ids.join(" "));
		input.setAttribute("aria-invalid", msg !== "" || serverInvalid ? "true" : "false");
	}

	input.addEventListener("change", function () {
		serverInvalid = false; // new files: the server's complaint was about the old ones
		show(problem());
	});
	input.form.addEventListener("submit", function (ev) {
		var msg = problem();
		show(msg);
		if (msg !== "") {
			ev.preventDefault();
			input.focus();
		}
	});
})();

// sockmail: redraws a running send's sequence diagram. While transcript
// lines arrive (the stream above adds them to #transcript), it fetches
// the diagram from /sends/{id}/diagram at most every 300 ms and swaps it
// in, keeping the focus on the arrow that had it; once more after the
// last line. Without JavaScript the page's refresh redraws it.
(function () {
	var box = document.getElementById("diagram-box");
	var transcript = document.getElementById("transcript");
	if (!box || box.dataset.running !== "true" || !transcript || !window.fetch || !window.MutationObserver) {
		return;
	}
	var url = "/sends/" + encodeURIComponent(box.dataset.sendId) + "/diagram";
	var busy = false, dirty = false, last = 0, timer = null, done = false;

	function swap(html) {
		var focused = document.activeElement;
		var flight = focused && box.contains(focused) ? focused.getAttribute("data-flight") : null;
		box.innerHTML = html;
		var svg = box.querySelector("svg");
		if (svg && svg.getAttribute("data-running") === "false") { done = true; }
		if (flight !== null) {
			var again = box.querySelector('[data-flight="' + flight + '"]');
			if (again) { again.focus(); }
		}
	}

	function fetchNow() {
		timer = null;
		busy = true;
		dirty = false;
		last = Date.now();
		fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (r) {
			return r.ok ? r.text() : null;
		}).then(function (html) {
			if (html !== null) { swap(html); }
		}, function () { /* keep the diagram drawn so far */ }).then(function () {
			busy = false;
			if (dirty && !done) { schedule(); }
		});
	}

	function schedule() {
		dirty = true;
		if (busy || timer !== null) { return; }
		timer = window.setTimeout(fetchNow, Math.max(0, 300 - (Date.now() - last)));
	}

	new MutationObserver(function () {
		if (!done) { schedule(); }
	}).observe(transcript, { childList: true, subtree: true, characterData: true, attributes: true });
	schedule();
})();

// sockmail: captured mail. The list's first page adds the messages
// captured after it was shown, as they arrive (server-sent events; rows
// rendered by the server, matching the page's search). Without
// JavaScript a reload shows them.
(function () {
	var table = document.querySelector('table[data-testid="captured-list"][data-events-url]');
	if (!table || !table.dataset.eventsUrl || !window.EventSource) {
		return;
	}
	var body = table.querySelector("tbody");
	var empty = document.querySelector('[data-testid="no-captured"]');
	var live = document.querySelector('[data-testid="captured-live"]');
	var total = document.querySelector('[data-testid="captured-total"]');
	var es = new EventSource(table.dataset.eventsUrl);
	es.addEventListener("message", function (msg) {
		var ev = JSON.parse(msg.data);
		if (body.querySelector('tr[data-id="' + String(ev.id) + '"]')) {
			return; // already listed
		}
		var t = document.createElement("template");
		t.innerHTML = ev.html; // rendered and escaped by the server
		var row = t.content.firstElementChild;
		if (!row) { return; }
		row.classList.add("arrived");
		body.insertBefore(row, body.firstChild);
		table.hidden = false;
		if (empty) { empty.hidden = true; }
		if (live) {
			var subject = row.querySelector('[data-testid="captured-subject"]');
			live.textContent = "New message: " + (subject ? subject.textContent.trim() : "");
		}
		if (total && total.dataset.capped === "false") {
			var n = parseInt(total.dataset.total || "0", 10) + 1;
			total.dataset.total = String(n);
			total.textContent = n + (n === 1 ? " message " : " messages ") +
				(total.dataset.search === "true" ? (n === 1 ? "matches the search." : "match the search.") : "captured.");
		}
	});
	// EventSource reconnects by itself after a network error; a page
	// left open keeps listening.
})();

// sockmail: the tabs of a captured message. They are links to the same
// page with another tab chosen, so they work without JavaScript; here
// they switch in place (keeping the URL in step) and follow the ARIA
// tabs pattern: one tab in the focus order, arrow keys, Home and End.
(function () {
	var list = document.querySelector('[role="tablist"][data-testid="captured-tabs"]');
	if (!list) {
		return;
	}
	var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
	function select(tab, focus) {
		tabs.forEach(function (t) {
			var on = t === tab;
			t.setAttribute("aria-selected", on ? "true" : "false");
			t.tabIndex = on ? 0 : -1;
			var panel = document.getElementById(t.getAttribute("aria-controls"));
			if (panel) { panel.hidden = !on; }
		});
		if (focus) { tab.focus(); }
		if (window.history && window.history.replaceState) {
			window.history.replaceState(null, "", tab.getAttribute("href"));
		}
	}
	tabs.forEach(function (t, i) {
		t.tabIndex = t.getAttribute("aria-selected") === "true" ? 0 : -1;
		t.addEventListener("click", function (e) {
			e.preventDefault();
			select(t, false);
		});
		t.addEventListener("keydown", function (e) {
			var next = null;
			if (e.key === "ArrowRight") { next = tabs[(i + 1) % tabs.length]; }
			if (e.key === "ArrowLeft") { next = tabs[(i - 1 + tabs.length) % tabs.length]; }
			if (e.key === "Home") { next = tabs[0]; }
			if (e.key === "End") { next = tabs[tabs.length - 1]; }
			if (next) {
				e.preventDefault();
				select(next, true);
			}
		});
	});
})();

// sockmail: the live report of a running check. The server sends the
// report's live part, rendered and escaped, after each step; when the
// check ends the page reloads to show the full stored report. Without
// JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
	var box = document.querySelector('[data-testid="check-live"][data-events-url]');
	if (!box || !box.dataset.eventsUrl || !window.EventSource) {
		return;
	}
	var leaving = false;
	window.addEventListener("pagehide", function () { leaving = true; });
	var es = new EventSource(box.dataset.eventsUrl);
	es.addEventListener("report", function (msg) {
		box.innerHTML = msg.data; // rendered and escaped by the server
	});
	es.addEventListener("done", function () {
		es.close();
		if (!leaving) { window.location.reload(); }
	});
	es.onerror = function () {
		es.close();
		if (!leaving) { window.setTimeout(function () { window.location.reload(); }, 1000); }
	};
})();
