/* portguard report --html: the page template (tools/report.html, its
 * script and styles inline) is built into the tool by the assembler's
 * .incbin, and the data goes in its one placeholder as JSON that no '<'
 * can end early. */
#include "tools/html.h"

#include <stdlib.h>
#include <string.h>

__asm__(".section .rodata\n"
	".balign 16\n"
	"pg_html_template:\n"
	".incbin \"tools/report.html\"\n"
	".byte 0\n"
	".previous\n");
extern const char pg_html_template[] __asm__("pg_html_template");

#define PG_HTML_SLOT "@PORTGUARD_DATA@"

void pg_html_report(const json_t *data, FILE *out)
{
	const char *slot = strstr(pg_html_template, PG_HTML_SLOT);
	char *json = json_dumps(data, JSON_COMPACT);

	if (!slot)
		slot = pg_html_template + strlen(pg_html_template);
	fwrite(pg_html_template, 1, (size_t)(slot - pg_html_template), out);
	/* Inside <script type="application/json">: "</script>" or "<!--" in a
	 * function's or a file's name would end or bend the element. '<' can
	 * only be in a JSON string, where \u003c is the same character. */
	for (const char *p = json ? json : "{}", *lt; *p; p = lt + 1) {
		lt = strchr(p, '<');
		if (!lt) {
			fputs(p, out);
			break;
		}
		fwrite(p, 1, (size_t)(lt - p), out);
		fputs("\\u003c", out);
	}
	free(json);
	if (*slot)
		fputs(slot + strlen(PG_HTML_SLOT), out);
}
