// The one operation of the Relay recipe, as an application writes it; relay-compiler reads it.
import { graphql } from 'relay-runtime';

export const query = graphql`
  query RelaySeatsQuery($customerId: ID!, $contractId: ID!, $first: Int!) {
    seatBalances(customerId: $customerId, contractId: $contractId, first: $first) {
      edges {
        node {
          id
          seatId
          balances { creditTypeId balance }
        }
      }
    }
  }
`;
