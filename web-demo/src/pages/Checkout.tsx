// Checkout with a card (the SPEC's test cards are one click away), and the
// answers a shopper needs to act on: declined, provider error, out of
// stock, changed prices (accept them with `confirmBasketPrices`).
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import {
  CheckoutDocument,
  ConfirmBasketPricesDocument,
  MyBasketDocument,
  PlaceOrderDocument,
  type OrderViewFragment,
} from '../gql/graphql';
import { problem, type Problem } from '../errors';
import { money, newKey } from '../format';
import { Link } from '../router';

/** The simulated provider's cards (SPEC, "Simulated card numbers"). */
export const TEST_CARDS = [
  { number: '4242424242424242', label: 'succeeds' },
  { number: '4000000000000002', label: 'is declined' },
  { number: '4000000000000119', label: 'provider error' },
];

type Outcome =
  | { kind: 'paid'; payment: OrderViewFragment }
  | { kind: 'failed'; payment: OrderViewFragment }
  | { kind: 'pending'; payment: OrderViewFragment }
  | { kind: 'problem'; problem: Problem };

export function CheckoutPage() {
  const [{ data, fetching }] = useQuery({ query: MyBasketDocument });
  const [checkoutState, checkout] = useMutation(CheckoutDocument);
  const [placeState, place] = useMutation(PlaceOrderDocument);
  const [confirmState, confirm] = useMutation(ConfirmBasketPricesDocument);
  const [card, setCard] = useState({ number: '', expMonth: '12', expYear: String(new Date().getFullYear() + 3), cvc: '' });
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const busy = checkoutState.fetching || placeState.fetching || confirmState.fetching;
  const basket = data?.myBasket;

  const pay = async (event: FormEvent) => {
    event.preventDefault();
    setOutcome(null);
    const result = await checkout({
      input: {
        idempotencyKey: newKey('web'),
        method: 'CARD',
        card: {
          number: card.number,
          expMonth: Number(card.expMonth),
          expYear: Number(card.expYear),
          cvc: card.cvc,
        },
      },
    });
    const refused = problem(result.error);
    const payment = result.data?.checkout;
    if (refused || !payment) {
      setOutcome({ kind: 'problem', problem: refused ?? { kind: 'other', code: 'UNKNOWN', message: 'No answer.' } });
    } else if (payment.status === 'COMPLETED') {
      setOutcome({ kind: 'paid', payment });
    } else if (payment.status === 'FAILED') {
      setOutcome({ kind: 'failed', payment });
    } else {
      setOutcome({ kind: 'pending', payment });
    }
  };

  const payLater = async () => {
    setOutcome(null);
    const result = await place({ input: { idempotencyKey: newKey('web-later'), method: 'CARD' } });
    const refused = problem(result.error);
    if (refused || !result.data) {
      setOutcome({ kind: 'problem', problem: refused ?? { kind: 'other', code: 'UNKNOWN', message: 'No answer.' } });
    } else {
      setOutcome({ kind: 'pending', payment: result.data.createPayment });
    }
  };

  const acceptPrices = async () => {
    const result = await confirm({});
    const refused = problem(result.error);
    setOutcome(refused ? { kind: 'problem', problem: refused } : null);
  };

  if (outcome?.kind === 'paid') {
    return (
      <section className="narrow">
        <h1>Thank you!</h1>
        <p role="status" className="success" data-testid="checkout-result">
          Payment completed: {money(outcome.payment.amount)} charged to the card ending {outcome.payment.cardLast4}.
        </p>
        <p>
          <Link href="/orders">See your orders</Link> · <Link href="/">Keep shopping</Link>
        </p>
      </section>
    );
  }
  if (fetching && !basket) return <p aria-live="polite">Loading…</p>;
  if (!basket || basket.items.length === 0) {
    return (
      <section className="narrow">
        <h1>Checkout</h1>
        <p>Your basket is empty. <Link href="/">Browse the catalogue</Link></p>
      </section>
    );
  }
  return (
    <section className="narrow">
      <h1>Checkout</h1>
      <ul className="summary">
        {basket.items.map((line) => (
          <li key={line.product.id}>
            {line.quantity} × {line.productName} <span>{money(line.subtotal)}</span>
          </li>
        ))}
      </ul>
      <p className="price">Total: {money(basket.total)}</p>
      <form onSubmit={pay} aria-describedby="test-cards">
        <div className="field">
          <label htmlFor="card-number">Card number</label>
          <input
            id="card-number"
            inputMode="numeric"
            autoComplete="cc-number"
            required
            value={card.number}
            onChange={(e) => setCard({ ...card, number: e.target.value })}
          />
        </div>
        <div className="row">
          <div className="field">
            <label htmlFor="card-month">Month</label>
            <input id="card-month" inputMode="numeric" autoComplete="cc-exp-month" required value={card.expMonth} onChange={(e) => setCard({ ...card, expMonth: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="card-year">Year</label>
            <input id="card-year" inputMode="numeric" autoComplete="cc-exp-year" required value={card.expYear} onChange={(e) => setCard({ ...card, expYear: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="card-cvc">CVC</label>
            <input id="card-cvc" inputMode="numeric" autoComplete="cc-csc" required value={card.cvc} onChange={(e) => setCard({ ...card, cvc: e.target.value })} />
          </div>
        </div>
        <div id="test-cards" className="test-cards">
          <p className="muted">Test cards (no real money):</p>
          {TEST_CARDS.map((test) => (
            <button
              key={test.number}
              type="button"
              className="chip"
              onClick={() => setCard({ ...card, number: test.number, cvc: '123' })}
            >
              {test.number.slice(-4)} {test.label}
            </button>
          ))}
        </div>
        <button type="submit" disabled={busy}>
          Pay {money(basket.total)}
        </button>{' '}
        <button type="button" className="secondary" disabled={busy} onClick={() => void payLater()}>
          Place order, pay later
        </button>
      </form>
      <Answer outcome={outcome} onAcceptPrices={() => void acceptPrices()} busy={busy} />
    </section>
  );
}

function Answer({ outcome, onAcceptPrices, busy }: { outcome: Outcome | null; onAcceptPrices: () => void; busy: boolean }) {
  if (!outcome || outcome.kind === 'paid') return null;
  if (outcome.kind === 'failed') {
    const { payment } = outcome;
    return (
      <div role="alert" className="error" data-testid="checkout-result">
        {payment.retryable ? (
          <p>
            The payment provider had a problem and nothing was charged. Please try again in a moment.
          </p>
        ) : (
          <p>Your card was declined. Nothing was charged. Please try another card.</p>
        )}
        {payment.failureReason && <p className="muted">({payment.failureReason})</p>}
      </div>
    );
  }
  if (outcome.kind === 'pending') {
    return (
      <p role="status" data-testid="checkout-result">
        Your order is placed and waiting for payment ({money(outcome.payment.amount)}). Pay or cancel it on{' '}
        <Link href="/orders">your orders</Link>.
      </p>
    );
  }
  const { problem } = outcome;
  return (
    <div role="alert" className="error" data-testid="checkout-result">
      <p>{problem.message}</p>
      {problem.kind === 'price-changed' && (
        <>
          <ul>
            {problem.lines.map((line) => (
              <li key={line.productId}>
                {line.productName}: was {money(line.basketPrice)}, now {money(line.currentPrice)}
              </li>
            ))}
          </ul>
          <button type="button" disabled={busy} onClick={onAcceptPrices}>
            Accept the new prices
          </button>
        </>
      )}
      {problem.kind === 'out-of-stock' && (
        <>
          <ul>
            {problem.lines.map((line) => (
              <li key={line.productId}>
                {line.productName}: {line.available} left, you asked for {line.requested}
              </li>
            ))}
          </ul>
          <p>
            <Link href="/basket">Change your basket</Link>
          </p>
        </>
      )}
    </div>
  );
}
