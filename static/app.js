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
