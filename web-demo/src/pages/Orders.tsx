// The shopper's orders (payments), each followed live
// (`paymentStatusChanged`) while it can still change; a pending one can be
// paid or cancelled.
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import {
  CancelOrderDocument,
  MyOrdersDocument,
  OrderStatusDocument,
  PayOrderDocument,
  type OrderViewFragment,
  type PaymentStatus,
} from '../gql/graphql';
import { problem } from '../errors';
import { money, when } from '../format';
import { Link } from '../router';

/** Statuses after which nothing changes any more. */
const FINAL: PaymentStatus[] = ['FAILED', 'REFUNDED', 'CANCELLED', 'EXPIRED'];

const STATUS_TEXT: Record<PaymentStatus, string> = {
  PENDING: 'Waiting for payment',
  PROCESSING: 'Being paid',
  COMPLETED: 'Paid',
  FAILED: 'Payment failed',
  PARTIALLY_REFUNDED: 'Partly refunded',
  REFUNDED: 'Refunded',
  CANCELLED: 'Cancelled',
  EXPIRED: 'Expired',
};

export function OrdersPage() {
  const [{ data, fetching, error }] = useQuery({ query: MyOrdersDocument, variables: { first: 20 } });
  const orders = data?.myPayments.edges.map((edge) => edge.node) ?? [];
  if (fetching && !data) return <p aria-live="polite">Loading…</p>;
  if (error) return <p role="alert" className="error">{problem(error)?.message}</p>;
  return (
    <section>
      <h1>Your orders</h1>
      {orders.length === 0 ? (
        <p>
          No orders yet. <Link href="/">Browse the catalogue</Link>
        </p>
      ) : (
        <ul className="orders" aria-label="Orders">
          {orders.map((order) => (
            <Order key={order.id} initial={order} />
          ))}
        </ul>
      )}
    </section>
  );
}

function Order({ initial }: { initial: OrderViewFragment }) {
  const [live, setLive] = useState<OrderViewFragment | null>(null);
  // The newer of the list's copy (refetched) and the last live event.
  const order = live && live.updatedAt >= initial.updatedAt ? live : initial;
  useSubscription(
    { query: OrderStatusDocument, variables: { paymentId: initial.id }, pause: FINAL.includes(initial.status) },
    (_previous, event) => {
      setLive(event.paymentStatusChanged);
      return event;
    },
  );
  const [cancelState, cancel] = useMutation(CancelOrderDocument);
  const [message, setMessage] = useState<string | null>(null);
  const act = async () => {
    const result = await cancel({ id: order.id });
    if (result.data) setLive(result.data.cancelPayment);
    setMessage(problem(result.error)?.message ?? null);
  };
  return (
    <li className="order" data-testid="order" data-status={order.status}>
      <div className="order-head">
        <strong>{money(order.amount)}</strong>{' '}
        <span className={`status ${order.status.toLowerCase()}`} aria-live="polite" data-testid="order-status">
          {STATUS_TEXT[order.status]}
        </span>
        <span className="muted"> · {when(order.createdAt)}</span>
      </div>
      <ul className="muted">
        {order.items.map((item, index) => (
          <li key={index}>
            {item.quantity} × {item.productName} ({money(item.unitPrice)})
          </li>
        ))}
      </ul>
      {Number(order.refundedAmount.amount) > 0 && <p>Refunded: {money(order.refundedAmount)}</p>}
      {order.status === 'FAILED' && (
        <p className="muted">
          {order.retryable ? 'The payment provider had a problem; nothing was charged.' : 'The card was declined; nothing was charged.'}
        </p>
      )}
      {order.status === 'PENDING' && (
        <>
          {order.expiresAt && <p className="muted">Held until {when(order.expiresAt)}.</p>}
          <PayNow id={order.id} onPaid={setLive} />
          <button type="button" className="secondary" disabled={cancelState.fetching} onClick={() => void act()}>
            Cancel order
          </button>
        </>
      )}
      {message && (
        <p role="alert" className="error">
          {message}
        </p>
      )}
    </li>
  );
}

function PayNow({ id, onPaid }: { id: string; onPaid: (order: OrderViewFragment) => void }) {
  const [state, pay] = useMutation(PayOrderDocument);
  const [number, setNumber] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const year = new Date().getFullYear() + 3;
    const result = await pay({ id, card: { number, expMonth: 12, expYear: year, cvc: '123' } });
    if (result.data) onPaid(result.data.processPayment);
    setMessage(problem(result.error)?.message ?? null);
  };
  return (
    <form className="pay-now" onSubmit={submit}>
      <label htmlFor={`pay-${id}`}>Card number</label>
      <input id={`pay-${id}`} inputMode="numeric" required value={number} onChange={(e) => setNumber(e.target.value)} />
      <button type="submit" disabled={state.fetching}>
        Pay now
      </button>
      {message && (
        <span role="alert" className="error">
          {message}
        </span>
      )}
    </form>
  );
}
