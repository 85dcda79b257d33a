// Router errors in a shopper's words. Codes are `extensions.code` (see the
// README's error table); checkout refusals carry `extensions.lines`.
import type { CombinedError } from '@urql/core';
import type { Money } from './format';

export interface PriceLine {
  productId: string;
  productName: string;
  basketPrice: Money;
  currentPrice: Money;
}

export interface StockLine {
  productId: string;
  productName: string;
  requested: number;
  available: number;
}

export type Problem =
  | { kind: 'price-changed'; message: string; lines: PriceLine[] }
  | { kind: 'out-of-stock'; message: string; lines: StockLine[] }
  | { kind: 'other'; code: string; message: string };

export function problem(error: CombinedError | undefined): Problem | null {
  if (!error) return null;
  if (error.networkError) {
    return {
      kind: 'other',
      code: 'NETWORK',
      message: 'The shop could not be reached. Check your connection and try again.',
    };
  }
  const first = error.graphQLErrors[0];
  if (!first) return { kind: 'other', code: 'UNKNOWN', message: error.message };
  const code = String(first.extensions?.code ?? 'UNKNOWN');
  const lines = first.extensions?.lines;
  switch (code) {
    case 'PRICE_CHANGED':
      return {
        kind: 'price-changed',
        message: 'Some prices changed since you added these items. Nothing was charged.',
        lines: Array.isArray(lines) ? (lines as PriceLine[]) : [],
      };
    case 'OUT_OF_STOCK':
      return {
        kind: 'out-of-stock',
        message: `${first.message}. Nothing was charged.`,
        lines: Array.isArray(lines) ? (lines as StockLine[]) : [],
      };
    case 'PRODUCT_UNAVAILABLE':
      return { kind: 'other', code, message: `${first.message}. Remove it from your basket; nothing was charged.` };
    case 'UNAUTHENTICATED':
      return { kind: 'other', code, message: 'Your sign-in has expired. Please sign in again.' };
    case 'UNAUTHORIZED_FIELD_OR_TYPE':
    case 'FORBIDDEN':
      return { kind: 'other', code, message: 'You are not allowed to do that (an admin sign-in is needed).' };
    case 'RATE_LIMITED':
      return { kind: 'other', code, message: 'Too many requests at once. Wait a moment and try again.' };
    case 'SUBGRAPH_UNAVAILABLE':
      return { kind: 'other', code, message: 'Part of the shop is not answering right now. Try again shortly.' };
    default:
      return { kind: 'other', code, message: first.message };
  }
}
