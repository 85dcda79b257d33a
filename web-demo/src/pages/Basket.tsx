// The basket: change quantities, remove lines; totals come from the server.
import { useMutation, useQuery } from 'urql';
import {
  MyBasketDocument,
  RemoveBasketLineDocument,
  UpdateBasketLineDocument,
} from '../gql/graphql';
import { problem } from '../errors';
import { money } from '../format';
import { Link } from '../router';
import { useState } from 'react';

export function BasketPage() {
  const [{ data, fetching, error }] = useQuery({ query: MyBasketDocument });
  const [update, setUpdate] = useMutation(UpdateBasketLineDocument);
  const [remove, setRemove] = useMutation(RemoveBasketLineDocument);
  const [message, setMessage] = useState<string | null>(null);
  const basket = data?.myBasket;
  const busy = update.fetching || remove.fetching;

  if (fetching && !basket) return <p aria-live="polite">Loading…</p>;
  if (error) return <p role="alert" className="error">{problem(error)?.message}</p>;
  if (!basket || basket.items.length === 0) {
    return (
      <section>
        <h1>Your basket</h1>
        <p>Your basket is empty.</p>
        <p>
          <Link href="/">Browse the catalogue</Link>
        </p>
      </section>
    );
  }
  const change = async (productId: string, quantity: number) => {
    const result = quantity <= 0 ? await setRemove({ productId }) : await setUpdate({ productId, quantity });
    setMessage(problem(result.error)?.message ?? null);
  };
  return (
    <section>
      <h1>Your basket</h1>
      <table className="lines">
        <caption className="visually-hidden">Basket lines</caption>
        <thead>
          <tr>
            <th scope="col">Product</th>
            <th scope="col">Unit price</th>
            <th scope="col">Quantity</th>
            <th scope="col">Subtotal</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {basket.items.map((line) => (
            <tr key={line.product.id}>
              <th scope="row">
                <Link href={`/products/${line.product.id}`}>{line.productName}</Link>
              </th>
              <td>{money(line.unitPrice)}</td>
              <td>
                <label className="visually-hidden" htmlFor={`qty-${line.product.id}`}>
                  Quantity of {line.productName}
                </label>
                <input
                  id={`qty-${line.product.id}`}
                  type="number"
                  min={1}
                  max={999}
                  inputMode="numeric"
                  defaultValue={line.quantity}
                  key={line.quantity}
                  disabled={busy}
                  onBlur={(event) => {
                    const quantity = Number(event.target.value);
                    if (Number.isInteger(quantity) && quantity !== line.quantity) void change(line.product.id, quantity);
                  }}
                  onKeyDown={(event) => {
                    if (event.key === 'Enter') event.currentTarget.blur();
                  }}
                />
              </td>
              <td>{money(line.subtotal)}</td>
              <td>
                <button
                  type="button"
                  className="link"
                  disabled={busy}
                  aria-label={`Remove ${line.productName}`}
                  onClick={() => void change(line.product.id, 0)}
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row" colSpan={3}>
              Total ({basket.itemCount} items)
            </th>
            <td data-testid="basket-total">{money(basket.total)}</td>
            <td />
          </tr>
        </tfoot>
      </table>
      {message && (
        <p role="alert" className="error">
          {message}
        </p>
      )}
      {basket.checkoutInProgress && <p className="muted">A checkout of this basket is in progress.</p>}
      <p>
        <Link href="/checkout" className="button">
          Go to checkout
        </Link>
      </p>
    </section>
  );
}
