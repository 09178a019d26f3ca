import { formatCents, type InquiryRow, type UserBalance } from './ledger';

export interface LoggedPostback {
  readonly at: string;
  readonly kind: string;
  readonly format: string;
  readonly status: string;
  readonly summary: string;
  readonly warnings: readonly string[];
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** The example's one page: balances, inquiries and the last 50 postbacks; it refreshes itself. */
export function renderPage(
  balances: readonly UserBalance[],
  inquiries: readonly InquiryRow[],
  log: readonly LoggedPostback[],
): string {
  const balanceRows = balances
    .map(
      (balance) =>
        `<tr data-user="${escapeHtml(balance.user)}"><td>${escapeHtml(balance.user)}</td><td class="pending">${formatCents(balance.pendingCents)}</td><td class="cleared">${formatCents(balance.clearedCents)}</td><td>${balance.actions}</td></tr>`,
    )
    .join('');
  const inquiryRows = inquiries
    .map(
      (inquiry) =>
        `<tr><td>${escapeHtml(inquiry.inquiryId)}</td><td>${escapeHtml(inquiry.state)}</td><td>${escapeHtml(inquiry.resolutionStatus)}</td><td>${escapeHtml(inquiry.expectedPayout)}</td></tr>`,
    )
    .join('');
  const logRows = log
    .map(
      (entry) =>
        `<tr><td>${escapeHtml(entry.at)}</td><td>${escapeHtml(entry.kind)}</td><td>${escapeHtml(entry.format)}</td><td>${escapeHtml(entry.status)}</td><td>${escapeHtml(entry.summary)}</td><td>${escapeHtml(entry.warnings.join('; '))}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>Example cashback site</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
td.pending, td.cleared { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>Example cashback site</h1>
<p>Postbacks from impact.com arrive at <code>/impact/actions</code>, <code>/impact/clearing</code>, <code>/impact/inquiries</code> and <code>/impact/catalog</code>.</p>
<h2>Balances</h2>
<table id="balances"><thead><tr><th>user (subId1)</th><th>pending</th><th>cleared</th><th>actions</th></tr></thead><tbody>${balanceRows}</tbody></table>
<h2>Inquiries</h2>
<table id="inquiries"><thead><tr><th>inquiry</th><th>state</th><th>resolution</th><th>expected payout</th></tr></thead><tbody>${inquiryRows}</tbody></table>
<h2>Last 50 postbacks</h2>
<table id="postbacks"><thead><tr><th>received</th><th>kind</th><th>format</th><th>status</th><th>what</th><th>warnings</th></tr></thead><tbody>${logRows}</tbody></table>
</body>
</html>`;
}
