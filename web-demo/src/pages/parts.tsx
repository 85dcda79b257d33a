// Pieces several pages share: the stock badge and the add-to-basket button.
import { useState } from 'react';
import { useMutation } from 'urql';
import { AddToBasketDocument } from '../gql/graphql';
import { problem } from '../errors';
import { Link } from '../router';
import { useSession } from '../session';

/** Below this, "Only N left" (the shop's default low-stock threshold). */
const LOW_STOCK = 5;

export function StockBadge({ quantity }: { quantity: number }) {
  if (quantity <= 0) return <span className="badge out">Sold out</span>;
  if (quantity < LOW_STOCK) return <span className="badge low">Only {quantity} left</span>;
  return <span className="badge in">In stock ({quantity})</span>;
}

export function AddToBasket({ productId, name, disabled }: { productId: string; name: string; disabled: boolean }) {
  const { session } = useSession();
  const [{ fetching }, add] = useMutation(AddToBasketDocument);
  const [status, setStatus] = useState<{ ok: boolean; text: string } | null>(null);
  if (!session) {
    return (
      <p className="muted">
        <Link href="/signin">Sign in</Link> to buy
      </p>
    );
  }
  return (
    <div className="add">
      <button
        type="button"
        disabled={disabled || fetching}
        aria-label={`Add ${name} to basket`}
        onClick={async () => {
          const result = await add({ productId, quantity: 1 });
          const failed = problem(result.error);
          setStatus(
            failed
              ? { ok: false, text: failed.message }
              : { ok: true, text: `Added. Basket: ${result.data?.addBasketItem.itemCount ?? '?'} items.` },
          );
        }}
      >
        Add to basket
      </button>
      <span role="status" className={status?.ok === false ? 'error' : 'muted'}>
        {status?.text}
      </span>
    </div>
  );
}
