// Money and dates as a shopper reads them. Amounts stay decimal strings
// from the server (never floats) until they are formatted.

export interface Money {
  amount: string;
  currency: string;
}

export function money(value: Money): string {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: value.currency }).format(
      Number(value.amount),
    );
  } catch {
    return `${value.amount} ${value.currency}`;
  }
}

export function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A fresh idempotency key for one checkout attempt. */
export function newKey(prefix: string): string {
  const random =
    typeof crypto !== 'undefined' && 'randomUUID' in crypto
      ? crypto.randomUUID()
      : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return `${prefix}-${random}`;
}
