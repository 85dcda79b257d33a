// One product: details and its stock, live (`stockChanged`) when signed in.
import { useState } from 'react';
import { useQuery, useSubscription } from 'urql';
import { ProductPageDocument, StockWatchDocument } from '../gql/graphql';
import { money, when } from '../format';
import { Link } from '../router';
import { useSession } from '../session';
import { AddToBasket, StockBadge } from './parts';

export function ProductPage({ id }: { id: string }) {
  const { session } = useSession();
  const [{ data, fetching, error }] = useQuery({ query: ProductPageDocument, variables: { id } });
  const [live, setLive] = useState<{ quantity: number; delta: number; reason: string; at: string } | null>(null);
  useSubscription(
    { query: StockWatchDocument, variables: { productId: id }, pause: !session },
    (_previous, event) => {
      const change = event.stockChanged;
      setLive({ quantity: change.quantity, delta: change.delta, reason: change.reason, at: change.at });
      return event;
    },
  );

  const product = data?.product;
  if (fetching && !product) return <p aria-live="polite">Loading…</p>;
  if (error) return <p role="alert" className="error">The product could not be loaded: {error.message}</p>;
  if (!product) {
    return (
      <section>
        <h1>Product not found</h1>
        <p>
          <Link href="/">Back to the catalogue</Link>
        </p>
      </section>
    );
  }
  const quantity = live?.quantity ?? product.stockQuantity;
  return (
    <article className="product">
      <p>
        <Link href="/">← Catalogue</Link>
      </p>
      <h1>{product.name}</h1>
      <p className="muted">{product.category}</p>
      {product.imageUrl && <img src={product.imageUrl} alt="" className="hero" />}
      <p className="price">{money(product.price)}</p>
      {product.description && <p>{product.description}</p>}
      <div className="stock" aria-live="polite" data-testid="stock">
        <StockBadge quantity={quantity} />
        {session ? (
          <span className="muted live"> live</span>
        ) : (
          <span className="muted"> (sign in for live stock)</span>
        )}
        {live && (
          <p className="muted" data-testid="stock-change">
            {live.delta > 0 ? `+${live.delta}` : live.delta} ({live.reason}) at {when(live.at)}
          </p>
        )}
      </div>
      <AddToBasket productId={product.id} name={product.name} disabled={quantity <= 0} />
    </article>
  );
}
