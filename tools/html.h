/* portguard report --html: one self-contained page (tools/report.html, built
 * into the tool) with the merged report as its data. */
#ifndef PG_HTML_H
#define PG_HTML_H

#include <jansson.h>
#include <stdio.h>

/* Prints the page with data (a merged report object and its "processes")
 * in it; nothing in the page is fetched from elsewhere. */
void pg_html_report(const json_t *data, FILE *out);

#endif
